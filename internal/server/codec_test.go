package server

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// split cuts b into frames the way gRPC's transport hands a message over.
func split(b []byte, frame int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(frame, len(b))
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:n])))
		b = b[n:]
	}
	return s
}

// TestBodyCodec: what the codec decodes equals what proto.Unmarshal
// decodes, large fields point into one buffer of the call's own, and
// what it encodes proto.Unmarshal reads back as the message it was given.
func TestBodyCodec(t *testing.T) {
	c := newBodyCodec()
	c.min = 100
	big := bytes.Repeat([]byte("pecet"), 100)
	dupe := protowire.AppendTag(nil, 1, protowire.BytesType)
	dupe = protowire.AppendBytes(dupe, []byte("first"))
	withKey, _ := proto.Marshal(&pecetv1.DecryptRequest{Enveloped: big, Key: "gateway-decrypt"})
	tests := []struct {
		name string
		msg  proto.Message // decoded into a new one of its type
		wire []byte
	}{
		{"small", &pecetv1.DecryptRequest{}, mustMarshal(t, &pecetv1.DecryptRequest{Enveloped: []byte("x"), Key: "k"})},
		{"large", &pecetv1.DecryptRequest{}, withKey},
		{"field repeated on the wire: the last wins", &pecetv1.DecryptRequest{}, append(append(dupe, withKey...), dupe...)},
		{"large in a repeated field", &pecetv1.EncryptRequest{}, mustMarshal(t, &pecetv1.EncryptRequest{Data: []byte("d"), RecipientCertificates: [][]byte{big, big}})},
		{"large in a oneof", &pecetv1.SignRequest{}, mustMarshal(t, &pecetv1.SignRequest{Key: "k", Input: &pecetv1.SignRequest_Data{Data: big}})},
		{"unknown field", &pecetv1.DecryptRequest{}, protowire.AppendBytes(protowire.AppendTag(bytes.Clone(withKey), 99, protowire.BytesType), big)},
		{"wrong wire type for the bytes field", &pecetv1.DecryptRequest{}, protowire.AppendVarint(protowire.AppendTag(bytes.Clone(withKey), 1, protowire.VarintType), 7)},
		{"truncated", &pecetv1.DecryptRequest{}, withKey[:len(withKey)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.msg.ProtoReflect().New().Interface()
			werr := proto.Unmarshal(tt.wire, want)
			got := tt.msg.ProtoReflect().New().Interface()
			gerr := c.Unmarshal(split(tt.wire, 16), got)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("proto.Unmarshal: %v, codec: %v", werr, gerr)
			}
			if werr != nil {
				return
			}
			if !proto.Equal(got, want) {
				t.Fatalf("decoded %v, want %v", got, want)
			}
			out, err := c.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			back := tt.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(out.Materialize(), back); err != nil || !proto.Equal(back, got) {
				t.Fatalf("encoded and read back: %v, %v; want %v", back, err, got)
			}
		})
	}

	// The large field is the codec's buffer, not a copy per field, and the
	// wire frames are not aliased (gRPC reuses them).
	frames := split(withKey, 64)
	var req pecetv1.DecryptRequest
	if err := c.Unmarshal(frames, &req); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		d := f.ReadOnlyData()
		for i := range d {
			if &d[i] == &req.Enveloped[0] {
				t.Fatal("the message aliases a transport frame")
			}
		}
	}
	// Marshal sends the large field as it is, and leaves the message alone.
	resp := &pecetv1.DecryptResponse{Data: big, Key: "gateway-decrypt", Version: 3}
	out, err := c.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	shared := false
	for _, b := range out {
		if d := b.ReadOnlyData(); len(d) == len(big) && &d[0] == &resp.Data[0] {
			shared = true
		}
	}
	if !shared || !bytes.Equal(resp.Data, big) || resp.Key != "gateway-decrypt" {
		t.Errorf("Marshal copied the body or changed the message: shared %v, %v", shared, resp)
	}
	// Other messages (requests, streaming messages) are copied as gRPC's
	// codec copies them.
	req2 := &pecetv1.EncryptRequest{Data: big}
	out, err = c.Marshal(req2)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range out {
		if d := b.ReadOnlyData(); len(d) >= len(big) && &d[len(d)-len(big)] == &req2.Data[0] {
			t.Error("Marshal of a request shares its body")
		}
	}
	// Not a protobuf message: gRPC's codec says why.
	if _, err := c.Marshal(struct{}{}); err == nil {
		t.Error("Marshal of a non-message succeeded")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzBodyCodec: on any bytes the codec agrees with proto.Unmarshal (both
// fail, or both give equal messages), never panics, and what it encodes
// reads back equal.
func FuzzBodyCodec(f *testing.F) {
	big := bytes.Repeat([]byte{0xa5}, 40)
	for _, m := range []proto.Message{
		&pecetv1.DecryptRequest{Enveloped: big, Key: "gateway-decrypt"},
		&pecetv1.EncryptRequest{Data: big, RecipientKeys: []string{"a"}, RecipientCertificates: [][]byte{big}},
		&pecetv1.DecryptResponse{Data: big, Key: "k", Version: 2, Cipher: pecetv1.ContentCipher_AES_256_GCM},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	c := newBodyCodec()
	c.min = 16
	f.Fuzz(func(t *testing.T, wire []byte) {
		for _, typ := range []proto.Message{&pecetv1.DecryptRequest{}, &pecetv1.EncryptRequest{}, &pecetv1.DecryptResponse{}} {
			want := typ.ProtoReflect().New().Interface()
			werr := proto.Unmarshal(wire, want)
			got := typ.ProtoReflect().New().Interface()
			gerr := c.Unmarshal(split(wire, 7), got)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("%T: proto.Unmarshal: %v, codec: %v", typ, werr, gerr)
			}
			if werr != nil {
				continue
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%T: decoded %v, want %v", typ, got, want)
			}
			out, err := c.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			back := typ.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(out.Materialize(), back); err != nil || !proto.Equal(back, got) {
				t.Fatalf("%T: read back %v, %v; want %v", typ, back, err, got)
			}
		}
	})
}
