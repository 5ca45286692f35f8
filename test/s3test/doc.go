// Package s3test runs an S3-compatible server inside a test (or benchmark)
// process, for the end-to-end tests of automatic backups and restores:
// gofakes3's in-memory backend served over HTTP on a loopback port, spoken
// to by the daemon with a real S3 client library, path style.
//
// Two things are added in front of gofakes3, so that it answers like S3
// where the tests need it to:
//
//   - Credentials: gofakes3 accepts any request. Here a request signed
//     with another access key (Credential=KEY/... in the Authorization
//     header, or X-Amz-Credential in a presigned URL), or not signed at
//     all, is answered 403 with S3's error document, as S3 does.
//   - aws-chunked bodies: S3 clients stream uploads over plain HTTP as
//     signed chunks (Content-Encoding aws-chunked, X-Amz-Content-Sha256
//     STREAMING-...), with or without trailing checksums. gofakes3 decodes
//     only the trailer-less form and only for single PUTs, so a multipart
//     part would be stored with its chunk headers in it; the body is
//     decoded here instead, for every request.
//
// Tests read objects back (Object, Keys), plant objects (Put: a corrupt
// backup, say), remove them (Delete), and count the object writes that
// completed (Uploads), to tell an upload from a skipped one.
package s3test
