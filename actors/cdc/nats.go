package cdc

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// DefaultMsgIDPrefix prefixes Nats-Msg-Id when service_id is empty. Skiff
// has no cluster ID, and the prefix must be the same on every node (a new
// leader's re-sends must carry the IDs of the old leader's sends), so it is
// a constant: clusters sharing one stream must set distinct service_ids.
const DefaultMsgIDPrefix = "skiff"

// natsSink publishes one JetStream message per index (an envelope whose
// payload is that index's entry) with Nats-Msg-Id <prefix>-<index>, and
// waits for each PubAck. It connects on first use and reconnects forever.
type natsSink struct {
	server, subject   string
	stream            string // configured, or found by subject
	prefix            string
	serviceID, nodeID string
	opts              []nats.Option
	log               *zap.Logger
	bytesSent         func(int)
	duplicates        func()

	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

func newNATSSink(c Config, bytesSent func(int), duplicates func()) (*natsSink, error) {
	server, subject, err := natsTarget(c.Endpoint)
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.Name("skiff-cdc " + c.NodeID), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false)}
	if c.NATS.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(c.NATS.CredentialsFile))
	}
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		opts = append(opts, nats.Secure(tlsConf))
	}
	prefix := c.ServiceID
	if prefix == "" {
		prefix = DefaultMsgIDPrefix
	}
	return &natsSink{server: server, subject: subject, stream: c.NATS.Stream, prefix: prefix,
		serviceID: c.ServiceID, nodeID: c.NodeID, opts: opts, log: c.Logger, bytesSent: bytesSent, duplicates: duplicates}, nil
}

// connect returns the JetStream context and the stream, connecting and
// finding the stream by subject if need be.
func (n *natsSink) connect(ctx context.Context) (jetstream.JetStream, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nc == nil {
		nc, err := nats.Connect(n.server, n.opts...)
		if err != nil {
			return nil, "", fmt.Errorf("%w: connect %s: %w", ErrDelivery, redactedEndpoint(n.server), err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, "", fmt.Errorf("%w: jetstream: %w", ErrDelivery, err)
		}
		n.nc, n.js = nc, js
	}
	if n.stream == "" {
		name, err := n.js.StreamNameBySubject(ctx, n.subject)
		if err != nil {
			return nil, "", fmt.Errorf("%w: no JetStream stream captures %q: %w", ErrDelivery, n.subject, err)
		}
		n.stream = name
		n.log.Info("CDC publishes to JetStream", zap.String("stream", name), zap.String("subject", n.subject))
	}
	return n.js, n.stream, nil
}

func (n *natsSink) msgID(index uint64) string {
	return n.prefix + "-" + strconv.FormatUint(index, 10)
}

func (n *natsSink) deliver(ctx context.Context, es []entry) (int, error) {
	js, stream, err := n.connect(ctx)
	if err != nil {
		return 0, err
	}
	for i, e := range es {
		msg := nats.NewMsg(n.subject)
		msg.Data = envelope(n.serviceID, n.nodeID, []entry{e})
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(n.msgID(e.index)), jetstream.WithExpectStream(stream))
		if err != nil {
			return i, fmt.Errorf("%w: publish index %d to %s: %w", ErrDelivery, e.index, n.subject, err)
		}
		if ack.Duplicate {
			n.duplicates()
		}
		n.bytesSent(len(msg.Data))
	}
	return len(es), nil
}

func (n *natsSink) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nc != nil {
		n.nc.Close()
		n.nc, n.js = nil, nil
	}
}
