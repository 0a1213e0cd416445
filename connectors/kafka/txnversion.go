package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The sink's own EndTxn must speak the transaction version its producers
// speak. Kafka 4 brokers offer EndTxn v5 whatever transaction.version is
// finalized at, and take the version of a transaction's end from the
// EndTxn request version alone: v5 commits with an epoch bump (KIP-890).
// franz-go, like the Java producer, uses v5 only when the cluster's
// finalized transaction.version is at least 2, and otherwise v4 (a cluster
// older than Kafka 4, or upgraded without finalizing the feature).

// commitClient reports whether the cluster runs KIP-890 transactions
// (transaction.version >= 2), and returns the client for the sink's own
// EndTxn: cl if so, and otherwise a new client like cl (opts) whose EndTxn
// stops at version 4, which the caller closes.
func commitClient(ctx context.Context, cl *kgo.Client, brokers []string, opts []kgo.Opt, timeout time.Duration) (*kgo.Client, bool, error) {
	var resp *kmsg.ApiVersionsResponse
	err := retry(ctx, timeout, "ask the cluster's transaction version", func(ctx context.Context) error {
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "onceflow", "1"
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		resp = r
		return kerr.ErrorForCode(r.ErrorCode)
	})
	if err != nil {
		return nil, false, err
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return cl, true, nil
		}
	}
	vs := kversion.FromApiVersionsResponse(resp)
	if v, ok := vs.LookupMaxKeyVersion(int16(kmsg.EndTxn)); !ok || v <= 4 {
		return cl, false, nil // the brokers offer no more
	}
	vs.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	capped, err := newClient(brokers, opts, kgo.MaxVersions(vs))
	return capped, false, err
}
