package sm

import (
	"encoding/binary"
	"fmt"
	"io"
)

// dbGeometry is what a database file's 100-byte header says about its
// pages (SQLite file format, section 1.3).
type dbGeometry struct {
	pageSize int64
	usable   int64 // pageSize minus the reserved bytes at each page's end
	pages    int64
}

// readGeometry reads the header of the database file r.
func readGeometry(r io.ReaderAt) (dbGeometry, error) {
	var h [100]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return dbGeometry{}, fmt.Errorf("%w: database header: %w", ErrStorage, err)
	}
	ps := int64(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return dbGeometry{}, fmt.Errorf("%w: page size %d", ErrStorage, ps)
	}
	return dbGeometry{pageSize: ps, usable: ps - int64(h[20]), pages: int64(binary.BigEndian.Uint32(h[28:]))}, nil
}

// pageSet collects page numbers, each once.
type pageSet map[uint32]struct{}

// pageReader reads whole pages of one database file.
type pageReader struct {
	r io.ReaderAt
	g dbGeometry
	// page holds the b-tree page being walked, ov the overflow page.
	page, ov []byte
}

// read reads page n into *buf, allocated on first use.
func (p *pageReader) read(n uint32, buf *[]byte) ([]byte, error) {
	if n == 0 || int64(n) > p.g.pages {
		return nil, fmt.Errorf("%w: page %d out of range (1-%d)", ErrStorage, n, p.g.pages)
	}
	if *buf == nil {
		*buf = make([]byte, p.g.pageSize)
	}
	if _, err := p.r.ReadAt(*buf, int64(n-1)*p.g.pageSize); err != nil {
		return nil, fmt.Errorf("%w: page %d: %w", ErrStorage, n, err)
	}
	return *buf, nil
}

// addBtree adds every page of the b-tree rooted at root to set: interior
// and leaf pages, and the overflow chains of its cells (file format,
// sections 1.6 and 1.7). A page that is not what the tree says it should
// be is an error: the caller then copies the database whole instead.
func (p *pageReader) addBtree(root uint32, set pageSet) error {
	stack := []uint32{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, dup := set[n]; dup {
			return fmt.Errorf("%w: page %d reached twice", ErrStorage, n)
		}
		set[n] = struct{}{}
		page, err := p.read(n, &p.page)
		if err != nil {
			return err
		}
		hdr := 0
		if n == 1 {
			hdr = 100
		}
		kind := page[hdr]
		cells := int(binary.BigEndian.Uint16(page[hdr+3:]))
		ptrs := hdr + 8
		if kind == 0x02 || kind == 0x05 {
			ptrs = hdr + 12
			stack = append(stack, binary.BigEndian.Uint32(page[hdr+8:]))
		} else if kind != 0x0a && kind != 0x0d {
			return fmt.Errorf("%w: page %d has b-tree type %#x", ErrStorage, n, kind)
		}
		if ptrs+2*cells > len(page) {
			return fmt.Errorf("%w: page %d claims %d cells", ErrStorage, n, cells)
		}
		for i := range cells {
			off := int(binary.BigEndian.Uint16(page[ptrs+2*i:]))
			if off >= int(p.g.usable) {
				return fmt.Errorf("%w: page %d cell %d at %d", ErrStorage, n, i, off)
			}
			cell := page[off:p.g.usable]
			if kind == 0x02 || kind == 0x05 {
				if len(cell) < 4 {
					return fmt.Errorf("%w: page %d cell %d cut short", ErrStorage, n, i)
				}
				stack = append(stack, binary.BigEndian.Uint32(cell))
				cell = cell[4:]
				if kind == 0x05 {
					continue // an interior table cell holds a key, no payload
				}
			}
			first, err := p.overflowStart(kind, cell)
			if err != nil {
				return fmt.Errorf("page %d cell %d: %w", n, i, err)
			}
			if err := p.addChain(first, set, "overflow page"); err != nil {
				return err
			}
		}
	}
	return nil
}

// overflowStart returns the first overflow page of a cell's payload, or 0
// when the payload fits on its page (file format, section 1.6).
func (p *pageReader) overflowStart(kind byte, cell []byte) (uint32, error) {
	size, head := readVarint(cell)
	if head == 0 {
		return 0, fmt.Errorf("%w: payload size", ErrStorage)
	}
	if kind == 0x0d {
		_, k := readVarint(cell[head:]) // the rowid
		if k == 0 {
			return 0, fmt.Errorf("%w: rowid", ErrStorage)
		}
		head += k
	}
	u := p.g.usable
	maxLocal := u - 35
	if kind != 0x0d {
		maxLocal = (u-12)*64/255 - 23
	}
	if int64(size) <= maxLocal {
		return 0, nil
	}
	minLocal := (u-12)*32/255 - 23
	local := minLocal + (int64(size)-minLocal)%(u-4)
	if local > maxLocal {
		local = minLocal
	}
	at := int64(head) + local
	if at+4 > int64(len(cell)) {
		return 0, fmt.Errorf("%w: overflow pointer past the page", ErrStorage)
	}
	return binary.BigEndian.Uint32(cell[at:]), nil
}

// addFreelistTrunks adds the freelist's trunk pages (file format, 1.5):
// freeing a page appends it to the first trunk or makes it a new one.
func (p *pageReader) addFreelistTrunks(set pageSet) error {
	first, err := p.read(1, &p.page)
	if err != nil {
		return err
	}
	return p.addChain(binary.BigEndian.Uint32(first[32:]), set, "freelist trunk")
}

// addChain adds a chain of pages, each naming the next in its first 4
// bytes (0 ends it): an overflow chain, the freelist's trunks.
func (p *pageReader) addChain(next uint32, set pageSet, what string) error {
	for next != 0 {
		if _, dup := set[next]; dup {
			return fmt.Errorf("%w: %s %d reached twice", ErrStorage, what, next)
		}
		set[next] = struct{}{}
		page, err := p.read(next, &p.ov)
		if err != nil {
			return err
		}
		next = binary.BigEndian.Uint32(page)
	}
	return nil
}

// readVarint decodes SQLite's big-endian varint at the start of b (up to
// 9 bytes, the ninth carrying 8 bits) and returns it with its length, or
// a length of 0 when b ends first.
func readVarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
