package policy

import (
	"bytes"
	"encoding/pem"
)

// pemOrDER returns the first PEM block of the given type when data is PEM,
// else data itself.
func pemOrDER(data []byte, typ string) []byte {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return data
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return data
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}
