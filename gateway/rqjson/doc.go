// Package rqjson parses rqlite request bodies and query parameters and
// encodes rqlite JSON responses, byte for byte as rqlite does (API.md 1.2 to
// 1.5), without reflection on the hot path.
//
// Parsing turns an HTTP body into cmdpb.Statements (ParseStatements,
// ParseQueryString) and URL query values into Params (ParseParams). Encoding
// appends the response object for a list of cmdpb.StatementResults to a
// caller-supplied buffer (AppendResponse, AppendError), so a handler can reuse
// one buffer per request.
package rqjson
