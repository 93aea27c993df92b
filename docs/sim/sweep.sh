#!/bin/sh
# The sweeps behind the recommended defaults (docs/SIMULATION.md): 1,000 nodes, calibrated CPU cost, 3 publishes 7 s apart.
set -e
cd "$(dirname "$0")/../.."
sim () { npm run --silent simulate -- --nodes 1000 --publishes 3 --cpu-frame-ms 3.5 --cpu-stream-ms 7.4 "$@" ; }
for f in 2 3 4 6 8; do echo "## fanout $f, target_peers 8"; sim --fanout $f --target-peers 8; done
for t in 4 6 12; do echo "## fanout 8, target_peers $t"; sim --fanout 8 --target-peers $t; done
for f in 3 4; do echo "## fanout $f, target_peers 6, 1 % loss, 5 % churn"; sim --fanout $f --target-peers 6 --loss 0.01 --churn 0.05 --horizon-ms 120000; done
