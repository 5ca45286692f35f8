package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/gateway/sqlrw"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Message headers (the contract with publishers).
const (
	// HeaderReplyTo names the subject the response is published to:
	// JetStream does not keep a publisher's reply subject.
	HeaderReplyTo = "Reply-To"
	// HeaderStatus is set on a reply to a message that could never be
	// applied: the HTTP status the gateway would have answered (400, 413).
	HeaderStatus = "Skiff-Status"
	// Headers of a dead letter: why, and where the message came from.
	HeaderDeadReason     = "Skiff-Dead-Letter-Reason"
	HeaderOrigSubject    = "Skiff-Original-Subject"
	HeaderOrigStream     = "Skiff-Original-Stream"
	HeaderOrigSequence   = "Skiff-Original-Sequence"
	HeaderDeliveries     = "Skiff-Deliveries"
	headerContentType    = "Content-Type"
	defaultContentType   = "application/json"
	idTagMsgID, idTagSeq = 0x01, 0x02
)

// paramHeaders are the /db/request query parameters (API.md 1.2) a message
// may carry as headers, matched case-insensitively; presence flags among
// them are off when the header's value is "false" or "0".
var paramHeaders = map[string]bool{
	"level": false, "freshness": false, "timeout": false, "db_timeout": false,
	"transaction": true, "timings": true, "associative": true, "blob_array": true, "pretty": true,
	"raft_index": true, "freshness_strict": true, "norwrandom": true, "norwtime": true, "noparse": true,
}

// errUnappliable marks a message that can never be applied as sent; its
// text is the error the gateway would have answered.
type errUnappliable struct {
	status int
	err    error
}

func (e *errUnappliable) Error() string { return e.err.Error() }
func (e *errUnappliable) Unwrap() error { return e.err }

// parseMessage reads a message as the gateway reads POST /db/request.
func parseMessage(m jetstream.Msg) (rqjson.Params, []*cmdpb.Statement, error) {
	vals := url.Values{}
	ct := defaultContentType
	for k, v := range m.Headers() {
		name := strings.ToLower(k)
		val := ""
		if len(v) > 0 {
			val = v[0]
		}
		if name == strings.ToLower(headerContentType) {
			ct = val
			continue
		}
		flag, ok := paramHeaders[name]
		if !ok || (flag && (strings.EqualFold(val, "false") || val == "0")) {
			continue
		}
		vals.Set(name, val)
	}
	params, err := rqjson.ParseParams(vals)
	if err != nil {
		return params, nil, &errUnappliable{status: 400, err: err}
	}
	stmts, err := rqjson.ParseStatements(m.Data(), ct)
	if err != nil {
		return params, nil, &errUnappliable{status: 400, err: err}
	}
	return params, stmts, nil
}

// header returns a header's first value, its name matched
// case-insensitively (NATS headers are case-sensitive).
func header(m jetstream.Msg, name string) string {
	h := m.Headers()
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// requestID is the write's ID in the state machine's dedup table: a pure
// function of the message, so every delivery of it, on any node, carries
// the same one. With a Nats-Msg-Id it is that ID's hash within the stream
// (a publisher's retry stored as a second message is one write too);
// without, the stream sequence, prefixed by a hash of the stream's name and
// creation time (a stream recreated under the same name restarts its
// sequences). The sequence form keeps IDs ascending, as the dedup index
// likes (actors.NewRequestID); the tags keep the forms apart, and apart
// from NewRequestID's, whose first byte is a clock's.
func requestID(stream string, created time.Time, msgID string, seq uint64) []byte {
	id := make([]byte, 16)
	if msgID != "" {
		h := sha256.Sum256([]byte("skiff-ingest\x00" + stream + "\x00" + msgID))
		id[0] = idTagMsgID
		copy(id[1:], h[:15])
		return id
	}
	h := sha256.Sum256([]byte("skiff-ingest\x00" + stream + "\x00" + strconv.FormatInt(created.UnixNano(), 10)))
	id[0] = idTagSeq
	copy(id[1:8], h[:7])
	binary.BigEndian.PutUint64(id[8:], seq)
	return id
}

// handle processes one delivery to its end: acked, nak'ed, terminated, or
// (ctx cancelled at the end of the shutdown grace) nak'ed for another node.
func (s *Service) handle(ctx context.Context, nc *nats.Conn, b *binding, m jetstream.Msg) {
	start := time.Now()
	s.c.received.Add(1)
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream delivery: a pull consumer never hands one out.
		s.fail(fmt.Errorf("message metadata: %w", err))
		_ = m.Term()
		return
	}
	if meta.NumDelivered > 1 {
		s.c.redelivered.Add(1)
	}
	stop := s.keepAlive(m)
	defer stop()
	replyTo := header(m, HeaderReplyTo)

	params, stmts, err := parseMessage(m)
	if err != nil {
		s.c.parseErrors.Add(1)
		s.unappliable(ctx, nc, b, m, meta, replyTo, params.Pretty, err)
		return
	}
	if rqjson.HasDisallowedPragma(stmts) {
		s.c.sqlErrors.Add(1)
		s.finish(nc, m, replyTo, rqjson.AppendError(nil, rqjson.ErrTextDisallowedPragma, params.Pretty))
		return
	}
	// /db/request asks rows of every statement: on the log path a
	// statement runs as a query when it has result columns (API.md 1.8).
	for _, st := range stmts {
		st.ReturnsRows = true
	}
	req := &cmdpb.Request{Statements: stmts, Transaction: params.Transaction, Timings: params.Timings}
	if params.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, params.Timeout)
		defer cancel()
	}
	level := replica.ParseLevel(params.Level)
	if level != replica.LevelStrong {
		// As the gateway: the read path refuses each write, so a refusal
		// anywhere means the request holds one and goes through the log.
		resp, err := s.data.Query(ctx, req, replica.ReadOptions{Level: level, Freshness: params.Freshness, DBTimeout: params.DBTimeout})
		switch {
		case errors.Is(err, replica.ErrStaleRead):
			s.c.sqlErrors.Add(1)
			s.finish(nc, m, replyTo, rqjson.AppendError(nil, replica.ErrStaleRead.Error(), params.Pretty))
			return
		case err != nil:
			s.retry(ctx, m, meta, fmt.Errorf("read: %w", err))
			return
		case !hasWrite(resp):
			s.c.reads.Add(1)
			s.finish(nc, m, replyTo, s.encode(resp, params, start))
			return
		}
	}
	rewrite(req, params)
	id := requestID(b.stream, b.created, header(m, jetstream.MsgIDHeader), meta.Sequence.Stream)
	resp, err := s.data.Execute(actors.WithRequestID(ctx, id), req)
	switch {
	case errors.Is(err, replica.ErrTooLarge):
		s.unappliable(ctx, nc, b, m, meta, replyTo, params.Pretty, &errUnappliable{status: 413, err: err})
		return
	case err != nil:
		// Not applied, or not known to be: delivered again, the request
		// ID makes a second apply impossible.
		s.retry(ctx, m, meta, fmt.Errorf("write: %w", err))
		return
	}
	s.c.applied.Add(1)
	if s.afterExecute != nil && !s.afterExecute(m) {
		return
	}
	s.finish(nc, m, replyTo, s.encode(resp, params, start))
}

// encode is the gateway's /db/request response body for resp (finish and
// respond in gateway/data.go).
func (s *Service) encode(resp *cmdpb.Response, p rqjson.Params, start time.Time) []byte {
	if resp.GetError() != "" || resultsFailed(resp) {
		s.c.sqlErrors.Add(1)
	}
	env := rqjson.Envelope{Error: resp.GetError(), Time: time.Since(start).Seconds()}
	if p.RaftIndex {
		env.RaftIndex = resp.GetRaftIndex()
	}
	return rqjson.AppendResponse(nil, resp.GetResults(), env,
		rqjson.Options{Pretty: p.Pretty, Timings: p.Timings, Associative: p.Associative, BlobArray: p.BlobArray, WriteRowsNull: true})
}

func resultsFailed(resp *cmdpb.Response) bool {
	for _, r := range resp.GetResults() {
		if r.GetError() != "" {
			return true
		}
	}
	return false
}

func hasWrite(resp *cmdpb.Response) bool {
	for _, r := range resp.GetResults() {
		if r.GetError() == sm.ErrTextWriteViaQuery {
			return true
		}
	}
	return false
}

// rewrite makes statements deterministic before they enter the log, as the
// gateway does (API.md 1.15), unless noparse.
func rewrite(req *cmdpb.Request, p rqjson.Params) {
	if p.NoParse {
		return
	}
	o := sqlrw.Options{NoRandom: p.NoRWRandom, NoTime: p.NoRWTime, Now: time.Now(), Rand: rand.Reader}
	for _, st := range req.Statements {
		if out, changed := sqlrw.Rewrite(st.Sql, o); changed {
			st.Sql = out
		}
	}
}

// finish publishes the reply, if one was asked for, then acks: a reply
// lost in a crash before the ack is sent again on the redelivery, answered
// from the dedup record. Both go out on one connection, in this order.
func (s *Service) finish(nc *nats.Conn, m jetstream.Msg, replyTo string, body []byte) {
	s.reply(nc, replyTo, body, 0)
	if err := m.Ack(); err != nil {
		s.fail(fmt.Errorf("ack: %w", err))
		return
	}
	s.c.acks.Add(1)
}

func (s *Service) reply(nc *nats.Conn, replyTo string, body []byte, status int) {
	if replyTo == "" {
		return
	}
	if subjectMatches(s.cfg.Subject, replyTo) {
		// It would be consumed as a command (and dead-lettered).
		s.fail(fmt.Errorf("reply to %q refused: the consumer's subject %q matches it", replyTo, s.cfg.Subject))
		return
	}
	r := nats.NewMsg(replyTo)
	r.Data = body
	if status != 0 {
		r.Header.Set(HeaderStatus, strconv.Itoa(status))
	}
	if err := nc.PublishMsg(r); err != nil {
		// A subject that cannot be published to is the publisher's
		// mistake: the message is still acked.
		s.fail(fmt.Errorf("reply to %q: %w", replyTo, err))
		return
	}
	s.c.replies.Add(1)
}

// retry naks a delivery that failed without a result, with a delay
// doubling per delivery; at shutdown, at once, for another node.
func (s *Service) retry(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, err error) {
	s.log.Debug("ingest: message not applied, delivered again", zap.Uint64("stream_seq", meta.Sequence.Stream),
		zap.Uint64("delivery", meta.NumDelivered), zap.Error(err))
	var nerr error
	if ctx.Err() != nil {
		nerr = m.Nak()
	} else {
		nerr = m.NakWithDelay(s.backoff(meta.NumDelivered))
	}
	if nerr != nil {
		s.fail(fmt.Errorf("nak: %w", nerr))
		return
	}
	s.c.naks.Add(1)
}

func (s *Service) backoff(delivery uint64) time.Duration {
	d := s.cfg.NakDelay
	for i := uint64(1); i < delivery && d < s.cfg.MaxNakDelay; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxNakDelay)
}

// unappliable handles a message that can never be applied as sent: nak'ed
// until its delivery count reaches MaxDeliveries, then answered with the
// error, dead-lettered and terminated. A dead letter that cannot be
// published yet is retried later: such a message is never dropped
// silently while a dead-letter subject is configured.
func (s *Service) unappliable(ctx context.Context, nc *nats.Conn, b *binding, m jetstream.Msg, meta *jetstream.MsgMetadata,
	replyTo string, pretty bool, cause error) {
	if meta.NumDelivered < uint64(s.cfg.MaxDeliveries) {
		s.retry(ctx, m, meta, cause)
		return
	}
	status := 400
	var ue *errUnappliable
	if errors.As(cause, &ue) {
		status = ue.status
	}
	if s.cfg.DeadLetterSubject != "" {
		dl := nats.NewMsg(s.cfg.DeadLetterSubject)
		dl.Data = m.Data()
		for k, v := range m.Headers() {
			if strings.HasPrefix(k, "Nats-") {
				continue // JetStream's own (a Nats-Msg-Id would be deduplicated against the original's)
			}
			dl.Header[k] = append([]string(nil), v...)
		}
		dl.Header.Set(HeaderDeadReason, cause.Error())
		dl.Header.Set(HeaderOrigSubject, m.Subject())
		dl.Header.Set(HeaderOrigStream, b.stream)
		dl.Header.Set(HeaderOrigSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
		dl.Header.Set(HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
		dl.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("skiff-dead-letter-%s-%d", b.stream, meta.Sequence.Stream))
		var err error
		if b.deadLetterStored {
			pctx, cancel := context.WithTimeout(ctx, publishTimeout)
			_, err = b.js.PublishMsg(pctx, dl)
			cancel()
		} else {
			err = nc.PublishMsg(dl)
		}
		if err != nil {
			s.fail(fmt.Errorf("dead letter to %q: %w", s.cfg.DeadLetterSubject, err))
			s.retry(ctx, m, meta, cause)
			return
		}
	}
	s.reply(nc, replyTo, rqjson.AppendError(nil, cause.Error(), pretty), status)
	s.c.deadLettered.Add(1)
	s.log.Warn("ingest: message dead-lettered", zap.String("stream", b.stream), zap.Uint64("stream_seq", meta.Sequence.Stream),
		zap.Uint64("deliveries", meta.NumDelivered), zap.String("dead_letter_subject", s.cfg.DeadLetterSubject), zap.Error(cause))
	if err := m.TermWithReason(cause.Error()); err != nil {
		s.fail(fmt.Errorf("term: %w", err))
	}
}

// keepAlive marks m in progress every third of the ack wait until stopped,
// so that a slow write (a leader election) is not delivered to a second
// node meanwhile.
func (s *Service) keepAlive(m jetstream.Msg) func() {
	t := time.NewTicker(s.cfg.AckWait / 3)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() {
		t.Stop()
		close(done)
		<-exited
	}
}
