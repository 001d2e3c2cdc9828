package server

import (
	"errors"
	"io"
	"sync"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
)

// SignDigestsStream: each request is a batch of SignDigests, answered in
// order by one response. Back-pressure (docs/performance.md "Batch
// calls"): the stream holds at most workers() requests (each at most
// MaxSignDigests digests) between reading them and sending their
// responses, and reads the next request only when one of those slots is
// free, that is when a response has been handed to gRPC. A client that
// stops reading stops gRPC's Send, so the slots stay taken, the server
// stops reading, and HTTP/2 flow control stops the client's sending: the
// server's memory for the stream is bounded whatever the client does.
// TestSignDigestsStreamBackPressure holds it. Each request's digests are
// charged to the caller's rate before Recv returns it (chargedStream); a
// refusal ends the stream as any Recv error does, after the responses of
// the requests before it (docs/security.md "Batch calls and the rate
// limit").
func (ss *signService) SignDigestsStream(st pecetv1.SignService_SignDigestsStreamServer) error {
	ctx := st.Context()
	first, err := st.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := ss.prepareDigests(ctx, first)
	if err != nil {
		return err
	}
	w := ss.s.workers()
	type job struct {
		*digestJob
		done chan struct{} // closed when every item is done
	}
	var (
		slots  = make(chan struct{}, w) // requests read and not yet sent
		queue  = make(chan *job, w+1)   // in order, to the sender
		work   = make(chan *job, w+1)   // in order, to the dispatcher
		failed = make(chan struct{})    // the sender stopped: read no more
		// sendErr is the sender's error, read after it has ended.
		sendErr error
		wg      sync.WaitGroup
	)
	// The dispatcher starts the items in the order they came, at most w
	// at once, so the oldest request's response is ready first (items of
	// requests signed side by side would hold every response back).
	wg.Add(2)
	go func() {
		defer wg.Done()
		sem := make(chan struct{}, w)
		for j := range work {
			var items sync.WaitGroup
			for i := range j.digests {
				sem <- struct{}{}
				items.Add(1)
				ss.s.items.Go(func() {
					defer func() { <-sem; items.Done() }()
					ss.signItem(ctx, b, j.digestJob, i)
				})
			}
			go func() { items.Wait(); close(j.done) }()
		}
	}()
	go func() {
		defer wg.Done()
		stopped := false
		for j := range queue {
			<-j.done
			// The item lines are durable before their signatures leave
			// (one fsync per request), and are written even when the
			// stream has failed: the token signed them.
			if err := ss.s.d.Audit.WriteItems(j.items); err != nil && !stopped {
				ss.s.d.Log.Error("audit log cannot be written: stream output withheld", "method", pecetv1.SignService_SignDigestsStream_FullMethodName, "err", err)
				sendErr, stopped = grpcerr.Status(err), true
				close(failed)
			}
			if !stopped {
				if err := st.Send(j.resp); err != nil {
					sendErr, stopped = err, true
					close(failed)
				}
			}
			// Once stopped, no slot is freed: the reader no longer waits
			// for one, and the job it queued last may never have taken
			// one (it saw failed instead), so a <-slots for it would
			// block the sender, and finish, for good.
			if !stopped {
				<-slots
			}
		}
	}()
	finish := func(err error) error {
		close(work)
		close(queue)
		wg.Wait()
		if sendErr != nil {
			return sendErr
		}
		return err
	}
	req, next := first, 0
	for {
		if err := sameParameters(first, req); err != nil {
			return finish(err)
		}
		if err := checkDigestCount(req); err != nil {
			return finish(err)
		}
		j := &job{digestJob: newDigestJob(ctx, b, req.GetDigests(), next), done: make(chan struct{})}
		next += len(req.GetDigests())
		work <- j  // never blocks: at most w+1 jobs are unsent
		queue <- j // nor this
		// The next request is read only once a slot is free: the sender
		// frees one per response sent.
		select {
		case slots <- struct{}{}:
		case <-failed:
			return finish(nil)
		}
		req, err = st.Recv()
		if errors.Is(err, io.EOF) {
			return finish(nil)
		}
		if err != nil {
			return finish(err)
		}
	}
}

// sameParameters: a stream's later requests leave the key, version,
// hash, raw and timestamp unset or repeat the first request's.
func sameParameters(first, req *pecetv1.SignDigestsRequest) error {
	if first == req {
		return nil
	}
	if (req.GetKey() != "" && req.GetKey() != first.GetKey()) ||
		(req.GetVersion() != 0 && req.GetVersion() != first.GetVersion()) ||
		(req.GetHash() != 0 && req.GetHash() != first.GetHash()) ||
		(req.GetRaw() && !first.GetRaw()) || (req.GetTimestamp() && !first.GetTimestamp()) {
		return grpcerr.InvalidArgument("key, version, hash, raw and timestamp are set by a stream's first request: leave them unset later, or repeat them")
	}
	return nil
}
