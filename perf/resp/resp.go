// Package resp is a minimal client codec for RESP, the Redis serialization
// protocol, just enough for the benchmark to drive GET and SET against a
// Redis server with the same load generator that drives our own nodes.
//
// # Requests
//
// A command is an array of bulk strings:
//
//	*<argc>\r\n  then per argument  $<len>\r\n<bytes>\r\n
//
// Writer formats them into a bufio.Writer without allocating; a SET's value
// is written as is (a large value bypasses the buffer and goes straight to
// the socket).
//
// # Replies
//
// Reader decodes one top-level reply at a time:
//
//	+<text>\r\n         simple string (Kind SimpleString, Data = text)
//	-<text>\r\n         error (Kind Error, Data = text)
//	:<int>\r\n          integer (Kind Integer, Int)
//	$<len>\r\n<bytes>\r\n  bulk string (Kind Bulk, Data = bytes)
//	$-1\r\n or _\r\n    null (Kind Null), what GET returns for a missing key
//
// Aggregates (arrays, maps) are not needed for GET and SET and are refused
// with ErrProtocol. Every length is bounded before anything is allocated: a
// line may not exceed the reader's buffer and a bulk string may not exceed
// the limit given to NewReader.
//
// # Buffer lifetime
//
// Reply.Data points into the Reader's own buffers and is valid only until the
// next call to Next. The Reader reuses one bulk buffer, grown to the largest
// value seen, so steady-state decoding allocates nothing. NextInto instead
// reads a bulk string into the caller's buffer (or a new slice when it does
// not fit), which stays valid: the workloads' client reads a GET's value
// straight where its caller wants it.
package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Errors. Malformed input wraps ErrProtocol; a stream that has returned it is
// out of step and must be closed. A bulk string longer than the limit wraps
// ErrTooLarge (also a protocol error: the stream cannot be resynchronized).
var (
	ErrProtocol = errors.New("resp: protocol error")
	ErrTooLarge = fmt.Errorf("%w: bulk string too large", ErrProtocol)
)

// DefaultMaxBulk is Redis's own default proto-max-bulk-len (512 MB).
const DefaultMaxBulk = 512 << 20

// Kind is the type of a reply, named by its RESP prefix byte.
type Kind byte

// Reply kinds.
const (
	SimpleString Kind = '+'
	Error        Kind = '-'
	Integer      Kind = ':'
	Bulk         Kind = '$'
	Null         Kind = '_'
)

func (k Kind) String() string {
	switch k {
	case SimpleString:
		return "simple string"
	case Error:
		return "error"
	case Integer:
		return "integer"
	case Bulk:
		return "bulk string"
	case Null:
		return "null"
	}
	return fmt.Sprintf("kind(%q)", byte(k))
}

// Reply is one decoded reply. Data is valid until the next Reader.Next.
type Reply struct {
	Kind Kind
	Int  int64  // Integer replies
	Data []byte // SimpleString, Error and Bulk replies
}

// Writer formats commands. It is not safe for concurrent use.
type Writer struct {
	w   *bufio.Writer
	num [24]byte // scratch for formatting lengths
}

// NewWriter returns a Writer buffering size bytes before writing to w.
func NewWriter(w io.Writer, size int) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, size)}
}

var (
	cmdGet = []byte("*2\r\n$3\r\nGET\r\n")
	cmdSet = []byte("*3\r\n$3\r\nSET\r\n")
	crlf   = []byte("\r\n")
)

// WriteGet buffers GET key.
func (w *Writer) WriteGet(key []byte) error {
	w.w.Write(cmdGet) // errors stick in the bufio.Writer; the last call reports them
	return w.writeBulk(key)
}

// WriteSet buffers SET key value.
func (w *Writer) WriteSet(key, value []byte) error {
	w.w.Write(cmdSet)
	w.writeBulk(key)
	return w.writeBulk(value)
}

// WriteCommand buffers an arbitrary command (used for setup such as AUTH or
// FLUSHALL, not on the hot path).
func (w *Writer) WriteCommand(args ...[]byte) error {
	w.writeHeader('*', len(args))
	var err error
	for _, a := range args {
		err = w.writeBulk(a)
	}
	return err
}

func (w *Writer) writeHeader(prefix byte, n int) {
	b := append(w.num[:0], prefix)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '\r', '\n')
	w.w.Write(b)
}

func (w *Writer) writeBulk(p []byte) error {
	w.writeHeader('$', len(p))
	w.w.Write(p)
	_, err := w.w.Write(crlf)
	return err
}

// Flush sends everything buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

// Reader decodes replies. It is not safe for concurrent use.
type Reader struct {
	r       *bufio.Reader
	bulk    []byte // reply bulk buffer, reused
	cmd     []byte // ReadCommand's argument bytes, reused
	ends    []int  // ReadCommand's argument boundaries in cmd
	maxBulk int
}

// NewReader returns a Reader with a size-byte read buffer (which also bounds
// the length of a status or error line) that refuses bulk strings longer
// than maxBulk bytes.
func NewReader(r io.Reader, size, maxBulk int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), maxBulk: maxBulk}
}

// Buffered is the number of bytes read from the stream but not yet decoded
// (a fake server flushes its answers when it reaches 0, the end of a
// pipeline).
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Next reads and decodes the next reply. A reply cut short by the end of the
// stream returns io.ErrUnexpectedEOF; a clean end between replies io.EOF.
func (r *Reader) Next() (Reply, error) { return r.next(nil, false) }

// NextInto is Next, except that a bulk string's Data is read into dst when
// it fits dst's capacity, else into a newly allocated slice: either way it
// belongs to the caller and stays valid after later calls. Simple strings
// and errors still point into the Reader's buffer.
func (r *Reader) NextInto(dst []byte) (Reply, error) { return r.next(dst, true) }

// next decodes one reply; own says whether a bulk string goes to dst (or a
// new slice) instead of the Reader's bulk buffer.
func (r *Reader) next(dst []byte, own bool) (Reply, error) {
	line, err := r.line()
	if err != nil {
		return Reply{}, err
	}
	kind, body := Kind(line[0]), line[1:]
	switch kind {
	case SimpleString, Error:
		return Reply{Kind: kind, Data: body}, nil
	case Integer:
		n, err := parseInt(body)
		return Reply{Kind: Integer, Int: n}, err
	case Null:
		if len(body) != 0 {
			return Reply{}, fmt.Errorf("%w: null reply with a body", ErrProtocol)
		}
		return Reply{Kind: Null}, nil
	case Bulk:
		return r.bulkString(body, dst, own)
	}
	return Reply{}, fmt.Errorf("%w: unsupported reply type %q", ErrProtocol, line[0])
}

// line returns the next line without its CRLF, pointing into the read
// buffer (valid until the next read).
func (r *Reader) line() ([]byte, error) {
	line, err := r.r.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, r.r.Size())
	case err == io.EOF && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: malformed line", ErrProtocol)
	}
	return line[:len(line)-2], nil
}

func (r *Reader) bulkString(header, dst []byte, own bool) (Reply, error) {
	n, err := parseInt(header)
	if err != nil {
		return Reply{}, err
	}
	if n == -1 {
		return Reply{Kind: Null}, nil
	}
	if n < 0 {
		return Reply{}, fmt.Errorf("%w: negative bulk length %d", ErrProtocol, n)
	}
	if n > int64(r.maxBulk) {
		return Reply{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, r.maxBulk)
	}
	if own {
		return readOwned(r.r, int(n), dst)
	}
	need := int(n) + 2
	if cap(r.bulk) < need {
		r.bulk = make([]byte, need)
	}
	buf := r.bulk[:need]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return Reply{}, noEOF(err)
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return Reply{}, fmt.Errorf("%w: bulk string not followed by CRLF", ErrProtocol)
	}
	return Reply{Kind: Bulk, Data: buf[:n]}, nil
}

// readOwned reads an n-byte bulk string and its CRLF into dst, or into a
// new slice when dst's capacity is short of n.
func readOwned(br *bufio.Reader, n int, dst []byte) (Reply, error) {
	v := dst[:0]
	if cap(v) < n {
		v = make([]byte, n)
	}
	v = v[:n]
	if _, err := io.ReadFull(br, v); err != nil {
		return Reply{}, noEOF(err)
	}
	var crlf [2]byte
	if _, err := io.ReadFull(br, crlf[:]); err != nil {
		return Reply{}, noEOF(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return Reply{}, fmt.Errorf("%w: bulk string not followed by CRLF", ErrProtocol)
	}
	return Reply{Kind: Bulk, Data: v}, nil
}

// parseInt parses a decimal integer with an optional minus sign, refusing
// empty input, stray bytes and overflow (strconv would need a string, which
// allocates).
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow int64
		return 0, fmt.Errorf("%w: bad integer", ErrProtocol)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: bad integer", ErrProtocol)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// MaxArgs bounds the number of arguments ReadCommand accepts.
const MaxArgs = 64

// ReadCommand reads one command (an array of bulk strings), the server side
// of the protocol, for fake servers in tests. The arguments are appended to
// args[:0] and point into one buffer of the Reader, valid until the next
// call; their total size is bounded by the Reader's bulk limit.
func (r *Reader) ReadCommand(args [][]byte) ([][]byte, error) {
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	if line[0] != '*' {
		return nil, fmt.Errorf("%w: command is not an array", ErrProtocol)
	}
	n, err := parseInt(line[1:])
	if err != nil {
		return nil, err
	}
	if n < 1 || n > MaxArgs {
		return nil, fmt.Errorf("%w: %d arguments", ErrProtocol, n)
	}
	args, r.cmd = args[:0], r.cmd[:0]
	ends := r.ends[:0]
	for range n {
		if err := r.appendArg(); err != nil {
			return nil, err
		}
		ends = append(ends, len(r.cmd))
	}
	r.ends = ends
	start := 0
	for _, end := range ends {
		args = append(args, r.cmd[start:end:end])
		start = end
	}
	return args, nil
}

// appendArg reads one bulk string of a command onto r.cmd.
func (r *Reader) appendArg() error {
	line, err := r.line()
	if err != nil {
		return noEOF(err)
	}
	if line[0] != '$' {
		return fmt.Errorf("%w: argument is not a bulk string", ErrProtocol)
	}
	n, err := parseInt(line[1:])
	if err != nil {
		return err
	}
	if n < 0 || n > int64(r.maxBulk-len(r.cmd)) {
		return fmt.Errorf("%w: argument of %d bytes", ErrTooLarge, n)
	}
	at := len(r.cmd)
	r.cmd = append(r.cmd, make([]byte, n+2)...)
	if _, err := io.ReadFull(r.r, r.cmd[at:]); err != nil {
		return noEOF(err)
	}
	if r.cmd[at+int(n)] != '\r' || r.cmd[at+int(n)+1] != '\n' {
		return fmt.Errorf("%w: argument not followed by CRLF", ErrProtocol)
	}
	r.cmd = r.cmd[:at+int(n)]
	return nil
}

// noEOF turns io.EOF inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendReply appends the encoding of rep to dst. Tests and fake servers use
// it; a Null is encoded the RESP2 way ($-1).
func AppendReply(dst []byte, rep Reply) []byte {
	switch rep.Kind {
	case Integer:
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, rep.Int, 10)
	case Bulk:
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(rep.Data)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, rep.Data...)
	case Null:
		dst = append(dst, "$-1"...)
	default:
		dst = append(dst, byte(rep.Kind))
		dst = append(dst, rep.Data...)
	}
	return append(dst, '\r', '\n')
}
