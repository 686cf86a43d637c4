package wire

import "encoding/binary"

// decodeRequest verifies a Request flatbuffer and reads its fields in one
// walk of its vtable. It accepts and refuses exactly what Verify with
// requestSpec does, with the same error for the same first fault, and
// fills r as the generated accessors would after it, except that each
// string and byte vector is capped at its own end (the accessors' slices
// run on to the end of meta). FuzzDecodeRequestSameAsVerify holds it to
// that against Verify and the accessors.
//
// Verify walks every field through a table description and the accessors
// then find each field again through the vtable: for a node's pipelined
// gets that was 6 % of its CPU, this walk about a third of it.
func decodeRequest(meta []byte, r *Request) error {
	n := int64(len(meta))
	if n < 4 {
		return errRequestShort[n]
	}
	pos := int64(binary.LittleEndian.Uint32(meta))
	if pos+4 > n {
		return errRequestTable
	}
	vt := pos - int64(int32(binary.LittleEndian.Uint32(meta[pos:])))
	if vt < 0 || vt+4 > n {
		return errRequestVtable
	}
	vsize := int64(binary.LittleEndian.Uint16(meta[vt:]))
	osize := int64(binary.LittleEndian.Uint16(meta[vt+2:]))
	if vsize < 4 || vsize%2 != 0 || vt+vsize > n || osize < 4 || pos+osize > n {
		return errRequestVtableSize
	}
	end := pos + osize // the table's last byte + 1: fields lie before it
	fields := min(int((vsize-4)/2), reqFields)
	for id := range fields {
		off := int64(binary.LittleEndian.Uint16(meta[vt+4+2*int64(id):]))
		if off == 0 {
			continue
		}
		fpos := pos + off
		switch id {
		case reqJob, reqKey, reqToken, reqAfter:
			s, err := requestVector(meta, fpos, end, id != reqToken)
			if err != nil {
				return err
			}
			switch id {
			case reqJob:
				r.Job = s
			case reqKey:
				r.Key = s
			case reqToken:
				r.Token = s
			default:
				r.After = s
			}
		case reqEpoch, reqVersion, reqObjectSize:
			if fpos+8 > end {
				return errRequestField
			}
			v := binary.LittleEndian.Uint64(meta[fpos:])
			switch id {
			case reqEpoch:
				r.Epoch = v
			case reqVersion:
				r.Version = v
			default:
				r.ObjectSize = int64(v)
			}
		case reqLimit:
			if fpos+4 > end {
				return errRequestField
			}
			r.Limit = binary.LittleEndian.Uint32(meta[fpos:])
		case reqDelimiter:
			if fpos+1 > end {
				return errRequestField
			}
			r.Delimiter = meta[fpos]
		}
	}
	return nil
}

// requestVector returns the string (NUL-terminated when str) or byte vector
// whose offset lies at fpos in a table ending at end.
func requestVector(meta []byte, fpos, end int64, str bool) ([]byte, error) {
	n := int64(len(meta))
	if fpos+4 > end {
		return nil, errRequestField
	}
	at := fpos + int64(binary.LittleEndian.Uint32(meta[fpos:]))
	if at+4 > n {
		return nil, errRequestVector
	}
	l := int64(binary.LittleEndian.Uint32(meta[at:]))
	need := at + 4 + l
	if str {
		need++
	}
	if need > n {
		return nil, errRequestVectorLen
	}
	return meta[at+4 : at+4+l : at+4+l], nil
}

// The verifier's errors for a Request, made once: a hostile stream of bad
// requests costs no allocation per frame for them.
var (
	errRequestTable      = Errorf(CodeMalformed, "Request: table out of bounds")
	errRequestVtable     = Errorf(CodeMalformed, "Request: vtable out of bounds")
	errRequestVtableSize = Errorf(CodeMalformed, "Request: vtable size out of bounds")
	errRequestField      = Errorf(CodeMalformed, "Request: field out of bounds")
	errRequestVector     = Errorf(CodeMalformed, "Request: vector out of bounds")
	errRequestVectorLen  = Errorf(CodeMalformed, "Request: vector length out of bounds")
	errRequestShort      = [4]error{
		Errorf(CodeMalformed, "Request: flatbuffer of 0 bytes"),
		Errorf(CodeMalformed, "Request: flatbuffer of 1 bytes"),
		Errorf(CodeMalformed, "Request: flatbuffer of 2 bytes"),
		Errorf(CodeMalformed, "Request: flatbuffer of 3 bytes"),
	}
)
