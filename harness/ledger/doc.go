// Package ledger records what a run published and what its subscribers
// received, and checks the two against each other in the style of Jepsen's
// total-queue and set-full checkers.
//
// A run records three kinds of event: an attempt to publish (Invoke), the
// attempt's outcome (Complete: OK when the client says the broker
// acknowledged it, Fail when the client guarantees it was not sent, Info when
// it cannot tell), and every delivery a subscriber saw (Deliver). Payloads
// carry their own identity (see Encode), so a delivery names the attempt it
// belongs to without any shared state between publisher and subscriber.
//
// Check turns the history into a Result: messages lost (acknowledged but never
// delivered to a subscriber that should have had them), unexpected deliveries,
// duplicates, reordered first deliveries per (publisher, topic), indeterminate
// attempts that were delivered anyway, and latency quantiles.
//
// Online gives the same verdict line by line, as a history is recorded or
// read (ReadOnline), with memory bounded by the messages in flight and the
// number of streams and subscribers rather than by the length of the run;
// its latency quantiles come from a sketch within SketchAccuracy. Merge
// joins the histories of disjoint shards of one run into one ledger, so the
// run gets one verdict.
//
// Recording is cheap (one short critical section and a 32-byte append per
// event, no goroutines), so a soak run can record millions of events; the
// analysis happens once, in Check.
package ledger
