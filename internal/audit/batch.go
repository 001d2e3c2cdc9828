package audit

// Batch calls (SignDigests, TimestampBatch, DecryptBatch and the stream
// SignDigestsStream) write one begin line for the call, one item line per
// item (PhaseItem: the fields of a single call's lines, the call's id in
// Call as in Batch, and the item's position in Item), and one end line. The item
// lines cost no fsync of their own: one fsync per batch makes all of them
// durable (docs/security.md "Batch calls", docs/performance.md "Batch
// calls").

// PhaseItem is the line of one item of a batch call, written after the
// item ran: its key version, input and outcome.
const PhaseItem = "item"

// EndBatch writes the item lines of the batch begun by b, then its end
// line, and returns as End does: under SyncEvent once every one of them is
// on disk, made so by one fsync for the whole batch; under SyncBegin once
// b's begin line is on disk (the item and end lines are appended and a
// later fsync covers them, as End's end line); under SyncNone at once. An
// error (wrapping ErrUnavailable) means the results must not leave the
// service.
func (l *Log) EndBatch(b *Begun, items []Event, end Event) error {
	if err := l.appendAll(items); err != nil {
		if werr := b.Wait(); werr != nil {
			return werr
		}
		return err
	}
	return l.End(b, end)
}

// WriteItems writes the item lines of one batch of a stream and returns
// once all are on disk (SyncEvent, SyncBegin: one fsync for all of them,
// shared with concurrent writers) or in the file (SyncNone). A stream's
// responses leave before its end line is written, so each batch's items
// are durable before its response is sent.
func (l *Log) WriteItems(items []Event) error {
	if len(items) == 0 {
		return nil
	}
	if err := l.appendAll(items[:len(items)-1]); err != nil {
		return err
	}
	return l.write(items[len(items)-1], l.o.Sync != SyncNone)
}

// appendAll appends lines without waiting for an fsync.
func (l *Log) appendAll(items []Event) error {
	for _, e := range items {
		if _, err := l.put(e); err != nil {
			return err
		}
	}
	return nil
}
