package s3test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// errChunked is a malformed aws-chunked body.
var errChunked = errors.New("malformed aws-chunked body")

// maxChunkLine bounds a chunk header or trailer line: a hex size and a
// 64-hex signature, or a checksum trailer, are far shorter.
const maxChunkLine = 4096

// unchunk replaces an aws-chunked request body by the decoded bytes, with
// Content-Length the decoded length and the payload marked unsigned, so
// that gofakes3 stores the object's bytes and not the chunk framing. A
// request that is not chunked is left alone.
func unchunk(r *http.Request) error {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	if !strings.HasPrefix(sha, "STREAMING-") {
		return nil
	}
	size, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("%w: X-Amz-Decoded-Content-Length %q", errChunked, r.Header.Get("X-Amz-Decoded-Content-Length"))
	}
	r.Body = &chunkedBody{br: bufio.NewReaderSize(r.Body, 64<<10), closer: r.Body, left: size}
	r.ContentLength = size
	r.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	r.Header.Del("X-Amz-Trailer")
	if enc := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.Header.Get("Content-Encoding")), "aws-chunked")); enc != "" {
		r.Header.Set("Content-Encoding", strings.TrimPrefix(enc, ","))
	} else {
		r.Header.Del("Content-Encoding")
	}
	return nil
}

// chunkedBody decodes "HEX[;chunk-signature=SIG]\r\nDATA\r\n" chunks up to
// a zero-length one, then skips the trailer lines up to an empty line. It
// checks that the chunks add up to the announced decoded length.
type chunkedBody struct {
	br     *bufio.Reader
	closer io.Closer
	left   int64 // decoded bytes still announced
	chunk  int64 // bytes left in the current chunk
	inside bool  // a chunk has been read, so its CRLF must follow
	done   bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	for c.chunk == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > c.chunk {
		p = p[:c.chunk]
	}
	n, err := c.br.Read(p)
	c.chunk -= int64(n)
	if errors.Is(err, io.EOF) && c.chunk > 0 {
		err = fmt.Errorf("%w: body ends inside a chunk", errChunked)
	}
	return n, err
}

// next reads the next chunk header (and the CRLF ending the previous
// chunk's data); at the last chunk it reads the trailers.
func (c *chunkedBody) next() error {
	if c.inside {
		if line, err := c.line(); err != nil || line != "" {
			return fmt.Errorf("%w: no CRLF after a chunk's data (%v)", errChunked, err)
		}
	}
	line, err := c.line()
	if err != nil {
		return err
	}
	hexSize, _, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(hexSize), 16, 64)
	if err != nil || size < 0 || size > c.left {
		return fmt.Errorf("%w: chunk header %q with %d bytes announced", errChunked, line, c.left)
	}
	c.left -= size
	c.chunk, c.inside = size, true
	if size > 0 {
		return nil
	}
	if c.left != 0 {
		return fmt.Errorf("%w: %d announced bytes missing", errChunked, c.left)
	}
	// Trailers (x-amz-checksum-*, x-amz-trailer-signature), if any, end
	// with an empty line; without trailers the last chunk's CRLF ends it.
	for {
		line, err := c.line()
		if errors.Is(err, io.EOF) || (err == nil && line == "") {
			c.done = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// line reads one CRLF-terminated line without its terminator.
func (c *chunkedBody) line() (string, error) {
	var b []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxChunkLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", errChunked, maxChunkLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return "", fmt.Errorf("%w: unterminated line %q", errChunked, b)
			}
			return "", err
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
}

func (c *chunkedBody) Close() error { return c.closer.Close() }
