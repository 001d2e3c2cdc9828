package server

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// bodyCodec is gRPC's proto codec with fewer copies of large bodies (a
// 10 MB Decrypt or Encrypt). gRPC's own codec copies a received message's
// frames into one buffer, then protobuf copies each bytes field out of it
// (proto.Unmarshal never aliases its input), and on the way out it
// encodes the response into a third buffer. Peak memory under concurrent
// large decryptions is made of those copies (docs/performance.md), so for
// messages of at least min bytes:
//
//   - Unmarshal copies the frames once into a buffer the message then owns,
//     and points the large top-level bytes fields (singular, outside a
//     oneof) into it; the rest of the message goes through proto.Unmarshal
//     as usual. The buffer is the call's own: the server may decrypt in
//     place in it.
//   - Marshal encodes a unary response (zeroCopyResponses) without its
//     large bytes fields and sends each of them as it is after its tag and
//     length, without copying. A protobuf parser accepts fields in any
//     order (the encoding guide: "parsers must be able to parse fields in
//     any order"). Only unary responses: gRPC writes a message after
//     SendMsg has returned, and a streaming handler that reuses its buffer
//     for the next message would change one not yet sent; a unary handler
//     has returned and touches its response no more.
//
// Smaller messages, and anything that is not a protobuf message, go
// through gRPC's codec unchanged.
type bodyCodec struct {
	base encoding.CodecV2
	// min is the message size from which bodies are aliased.
	min int
}

// bodyAliasMin: below this, one more copy costs less than the reflection.
const bodyAliasMin = 64 << 10

// zeroCopyResponses are the unary responses whose large bodies Marshal
// sends without copying (see bodyCodec).
var zeroCopyResponses = map[protoreflect.FullName]bool{
	"pecet.v1.DecryptResponse": true,
	"pecet.v1.EncryptResponse": true,
	"pecet.v1.SignResponse":    true,
}

func newBodyCodec() bodyCodec {
	return bodyCodec{base: encoding.GetCodecV2(grpcproto.Name), min: bodyAliasMin}
}

// Name is "proto": the codec replaces gRPC's for the content-subtype
// clients ask for.
func (bodyCodec) Name() string { return grpcproto.Name }

// aliasable is a field whose value may point into the received buffer:
// singular bytes at the top level, outside a oneof (a oneof's last member
// on the wire wins, which proto.Unmarshal decides on the rest).
func aliasable(fd protoreflect.FieldDescriptor) bool {
	return fd != nil && fd.Kind() == protoreflect.BytesKind && fd.Cardinality() != protoreflect.Repeated && fd.ContainingOneof() == nil
}

var errWire = errors.New("proto: cannot parse invalid wire-format data")

// Unmarshal: see bodyCodec.
func (c bodyCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok || data.Len() < c.min {
		return c.base.Unmarshal(data, v)
	}
	buf := data.Materialize()
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	type alias struct {
		fd  protoreflect.FieldDescriptor
		val []byte
	}
	var aliases []alias
	var rest []byte
	for b := buf; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errWire, protowire.ParseError(n))
		}
		l := protowire.ConsumeFieldValue(num, typ, b[n:])
		if l < 0 {
			return fmt.Errorf("%w: %w", errWire, protowire.ParseError(l))
		}
		if fd := fields.ByNumber(num); typ == protowire.BytesType && aliasable(fd) {
			val, _ := protowire.ConsumeBytes(b[n:])
			found := false
			for i := range aliases {
				if aliases[i].fd == fd {
					aliases[i].val, found = val, true // the last one on the wire wins
				}
			}
			if !found {
				aliases = append(aliases, alias{fd, val})
			}
		} else {
			rest = append(rest, b[:n+l]...)
		}
		b = b[n+l:]
	}
	if err := proto.Unmarshal(rest, m); err != nil {
		return err
	}
	for _, a := range aliases {
		r.Set(a.fd, protoreflect.ValueOfBytes(a.val))
	}
	return nil
}

// Marshal: see bodyCodec.
func (c bodyCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok || !zeroCopyResponses[m.ProtoReflect().Descriptor().FullName()] {
		return c.base.Marshal(v)
	}
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	large := func(fd protoreflect.FieldDescriptor) bool {
		return aliasable(fd) && len(r.Get(fd).Bytes()) >= c.min
	}
	n := 0
	for i := range fields.Len() {
		if large(fields.Get(i)) {
			n++
		}
	}
	if n == 0 {
		return c.base.Marshal(v)
	}
	// A shallow copy without the large fields (the values are shared, not
	// copied; the handler's message is left as it is).
	head := r.New()
	r.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if !large(fd) {
			head.Set(fd, val)
		}
		return true
	})
	head.SetUnknown(r.GetUnknown())
	enc, err := proto.Marshal(head.Interface())
	if err != nil {
		return nil, err
	}
	out := make(mem.BufferSlice, 0, 2*n)
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !large(fd) {
			continue
		}
		b := r.Get(fd).Bytes()
		enc = protowire.AppendTag(enc, fd.Number(), protowire.BytesType)
		enc = protowire.AppendVarint(enc, uint64(len(b)))
		out = append(out, mem.SliceBuffer(enc), mem.SliceBuffer(b))
		enc = nil
	}
	return out, nil
}
