package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/mqttas/mqttas-go/harness/k8s"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/soak"
)

// renderK8s renders a trace for a fleet run on Kubernetes as a Kustomize overlay (harness/k8s).
func renderK8s(args []string, stdout io.Writer, con *console) int {
	fs := flag.NewFlagSet("soak render-k8s", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "directory of the overlay to write (required)")
	base := fs.String("base", "deploy/overlays/self-contained", "the overlay the rendering builds on (a directory with a kustomization.yaml)")
	ns := fs.String("namespace", k8s.DefaultNamespace, "the fleet's namespace")
	external := fs.String("external-broker", "", "host names or IPs of an external broker cluster, comma separated (default: the in-cluster Mosquitto)")
	tail := fs.Duration("tail", soak.DefaultConfig().Tail, "fault-free time after the trace's end, added to the soak's duration")
	wf := fs.Bool("workflow", false, "one Chaos Mesh Workflow, which keeps the trace's times, instead of a NetworkChaos or Schedule per fault")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *out == "" {
		con.Printf("soak: usage: soak render-k8s -o <dir> [-base dir] [-namespace ns] [-external-broker host,...] [-tail d] [-workflow] <trace.yaml>")
		return exitUsage
	}
	s, err := schedule.Load(fs.Arg(0))
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	o := k8s.Options{Namespace: *ns, Tail: *tail, Workflow: *wf}
	if *external != "" {
		for h := range strings.SplitSeq(*external, ",") {
			o.ExternalBrokers = append(o.ExternalBrokers, strings.TrimSpace(h))
		}
	}
	r, err := k8s.Render(s, o)
	if err == nil {
		err = r.Write(*out, *base)
	}
	if err != nil {
		con.Printf("soak: render-k8s %s: %v", fs.Arg(0), err)
		if errors.Is(err, k8s.ErrTrace) || errors.Is(err, k8s.ErrInvalid) {
			return exitUsage
		}
		return exitHarness
	}
	for _, sk := range r.Skipped {
		con.Printf("soak: render-k8s: not rendered: %s: %s", sk.Occurrence, sk.Why)
	}
	fmt.Fprintf(stdout, "%s: %d Chaos Mesh object(s), %d fault(s) in the pods' trace, %d not rendered; soak duration %v; kubectl apply -k %s\n",
		filepath.Join(*out, k8s.KustomizationFile), len(r.Chaos), len(r.InPod.Faults), len(r.Skipped), r.Duration, *out)
	return exitPass
}
