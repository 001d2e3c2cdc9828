package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"log/slog"
	"math/big"
	"strconv"
	"strings"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/tsa"
)

type timestampService struct {
	pecetv1.UnimplementedTimestampServiceServer
	s *Server
}

// TSAKey is the tsa.KeySource of a TIMESTAMP key on the token: its primary
// version, fetched per call (the keystore caches it) so a rotation takes
// effect without a restart.
func TSAKey(keys Keys, alias string) tsa.KeySource {
	return func(ctx context.Context) (crypto.Signer, []*x509.Certificate, error) {
		k, err := keys.Signer(ctx, alias, 0, keystore.PurposeTimestamp)
		if err != nil {
			return nil, nil, err
		}
		return k, k.Version().Chain, nil
	}
}

// observeTSA logs and counts one time-stamp answer. Only the serial and the
// outcome are logged: the imprint is a digest of someone's data.
func (s *Server) observeTSA(ctx context.Context, transport string, res tsa.Result) {
	fail := res.Fail.String()
	s.d.Metrics.TSA.WithLabelValues(transport, res.Status.String(), fail).Inc()
	switch {
	case res.Info != nil:
		// Debug, off by default: the serial's hex is made only when written.
		if s.d.Log.Enabled(ctx, slog.LevelDebug) {
			s.d.Log.LogAttrs(ctx, slog.LevelDebug, "time-stamp issued", slog.String("transport", transport),
				slog.String("serial", res.Info.Serial.Text(16)), slog.Time("gen_time", res.Info.GenTime))
		}
	case res.Fail == tsa.FailSystemFailure:
		s.d.Log.Error("time-stamp failed", "transport", transport, "err", res.Cause)
	default:
		s.d.Log.Info("time-stamp rejected", "transport", transport, "fail_info", fail, "text", res.Text)
	}
}

func (svc *timestampService) Timestamp(ctx context.Context, req *pecetv1.TimestampRequest) (*pecetv1.TimestampResponse, error) {
	authority := svc.s.live(ctx).TSA
	if authority == nil {
		return nil, tsa.ErrNoTSA
	}
	return svc.stamp(ctx, authority, req)
}

// stamp is one time-stamp, for Timestamp and each item of TimestampBatch.
func (svc *timestampService) stamp(ctx context.Context, authority *tsa.Authority, req *pecetv1.TimestampRequest) (*pecetv1.TimestampResponse, error) {
	h, err := hashOf(req.GetHash())
	if err != nil {
		return nil, err
	}
	if len(req.GetDigest()) == 0 {
		return nil, grpcerr.InvalidArgument("digest is required: the hash of the data to time-stamp")
	}
	id, _ := tsa.HashOID(h)
	treq := &tsa.Request{Hash: h, HashOID: id, Digest: req.GetDigest(), CertReq: req.GetCertReq()}
	if n := req.GetNonce(); len(n) > 0 {
		if len(n) > 64 {
			return nil, grpcerr.InvalidArgument("nonce is longer than 64 bytes")
		}
		treq.Nonce = new(big.Int).SetBytes(n)
	}
	if p := req.GetPolicy(); p != "" {
		if !config.ValidOID(p) {
			return nil, grpcerr.InvalidArgument("policy must be a dotted OID such as 1.2.3.4.1")
		}
		treq.Policy = ParseOID(p)
	}
	der, res := authority.Stamp(ctx, treq)
	svc.s.observeTSA(ctx, "grpc", res)
	out := &pecetv1.TimestampResponse{Response: der, StatusText: res.Text, Status: pecetv1.TimestampResponse_REJECTION}
	if res.Status == tsa.StatusGranted {
		out.Status = pecetv1.TimestampResponse_GRANTED
		out.GenTime = ts(res.Info.GenTime)
		out.SerialNumber = res.Info.Serial.Bytes()
		out.Policy = res.Info.Policy.String()
		out.Token = res.Token // Stamp says which token it put in der: no need to parse der again
	} else {
		out.FailureInfo = res.Fail.String()
	}
	return out, nil
}

// ParseOID parses an OID that config.ValidOID accepted.
func ParseOID(s string) asn1.ObjectIdentifier {
	parts := strings.Split(s, ".")
	id := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		id[i], _ = strconv.Atoi(p)
	}
	return id
}
