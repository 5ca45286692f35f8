package nodeview

import "io"

// readKeys calls quit at the first q, Q, Ctrl-C or Ctrl-D read from r
// (a terminal in raw mode, so each key arrives alone), or when reading
// fails.
func readKeys(r io.Reader, quit func()) {
	b := make([]byte, 16)
	for {
		n, err := r.Read(b)
		for _, c := range b[:n] {
			if c == 'q' || c == 'Q' || c == 3 || c == 4 {
				quit()
				return
			}
		}
		if err != nil {
			quit()
			return
		}
	}
}
