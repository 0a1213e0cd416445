package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The sink's own EndTxn must speak the transaction version its producers
// speak. Kafka 4 takes the version of a transaction's end from the EndTxn
// request version alone: v5 commits with an epoch bump (KIP-890). franz-go
// uses v5 only when the cluster's finalized transaction.version is at
// least 2, and otherwise v4, even when brokers offer v5 (a cluster
// upgraded without finalizing the feature). Were the sink's commit v5 and
// the producer's repeat of it v4 (see txnWriter.settle), the repeat would
// be refused as fenced and every commit would replace its client.

// commitClient returns cl when the cluster's transaction.version is at
// least 2, and otherwise a new client like cl (opts) whose EndTxn stops at
// version 4; the caller closes it.
func commitClient(ctx context.Context, cl *kgo.Client, brokers []string, opts []kgo.Opt, timeout time.Duration) (*kgo.Client, error) {
	var resp *kmsg.ApiVersionsResponse
	err := retry(ctx, timeout, "ask the cluster's transaction version", func(ctx context.Context) error {
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "onceflow", "1"
		r, err := req.RequestWith(ctx, cl)
		resp = r
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return cl, nil
		}
	}
	vs := kversion.FromApiVersionsResponse(resp)
	if v, ok := vs.LookupMaxKeyVersion(int16(kmsg.EndTxn)); !ok || v <= 4 {
		return cl, nil // the brokers offer no more
	}
	vs.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	return newClient(brokers, opts, kgo.MaxVersions(vs))
}
