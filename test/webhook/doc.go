// Package webhook is a real CDC webhook receiver for Skiff's end-to-end
// tests and its CDC benchmark: a net/http server on a loopback port that
// decodes every POSTed envelope strictly (rqlite's keys, API.md §1.14),
// can be told to answer 500 for a while, and deduplicates by index as the
// issue tells a consumer to (keep the highest index processed; a group
// whose index is not above it is a duplicate). It records every violation
// of the delivery contract it can see on its own: a re-sent index that was
// never delivered (a gap), indexes going backwards inside a POST, a
// duplicate whose content differs from the first delivery, malformed JSON.
package webhook
