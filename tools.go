//go:build tools

// Package tools pins the code generators and the libraries the packages
// are being built on, so go.mod keeps them while work is in progress.
package tools

import (
	_ "github.com/ThalesGroup/crypto11"
	_ "github.com/digitorus/timestamp"
	_ "github.com/miekg/pkcs11"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "golang.org/x/crypto/cryptobyte"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "gopkg.in/yaml.v3"
)
