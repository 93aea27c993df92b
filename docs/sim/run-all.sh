#!/bin/sh
# Regenerates every figure under docs/sim/ (see docs/SIMULATION.md). Deterministic: same seed, same tables.
set -e
cd "$(dirname "$0")/../.."
sim () { npm run --silent simulate -- "$@" ; }
# Calibration: 100 nodes on one 2-core machine, as bench/propagation.mjs --nodes 100 --topology random.
sim --nodes 100 --publishes 5 --cpu-frame-ms 3.5 --cpu-stream-ms 7.4 --cores 2 --out docs/sim/n100-calibration-2cores
sim --nodes 100 --publishes 5 --cpu-frame-ms 3.5 --cpu-stream-ms 7.4 --cores 1 --out docs/sim/n100-calibration-1core
sim --nodes 100 --publishes 5 --out docs/sim/n100-network
# 1,000 and 10,000 nodes: LAN latency, with and without 1 % loss and 5 % churn.
sim --nodes 1000 --publishes 5 --serf --out docs/sim/n1000
sim --nodes 1000 --publishes 5 --serf --loss 0.01 --out docs/sim/n1000-loss
sim --nodes 1000 --publishes 5 --churn 0.05 --out docs/sim/n1000-churn
sim --nodes 1000 --publishes 5 --loss 0.01 --churn 0.05 --out docs/sim/n1000-loss-churn
# (10,000 nodes: a few minutes each, and about 1.5 GiB of memory.)
sim --nodes 10000 --publishes 2 --out docs/sim/n10000
sim --nodes 10000 --publishes 2 --loss 0.01 --out docs/sim/n10000-loss
sim --nodes 10000 --publishes 1 --churn 0.05 --horizon-ms 120000 --out docs/sim/n10000-churn
sim --nodes 10000 --publishes 1 --loss 0.01 --churn 0.05 --horizon-ms 120000 --out docs/sim/n10000-loss-churn
# The same with the per-message CPU cost calibrated on the real 100-daemon run (one core per node).
sim --nodes 1000 --publishes 5 --serf --cpu-frame-ms 3.5 --cpu-stream-ms 7.4 --out docs/sim/n1000-cpu
sim --nodes 10000 --publishes 2 --cpu-frame-ms 3.5 --cpu-stream-ms 7.4 --out docs/sim/n10000-cpu
# Partitions: half the mesh cut off for 20 s and for 2 min.
sim --nodes 1000 --publishes 1 --partition 0.5:20000 --horizon-ms 120000 --out docs/sim/n1000-partition-20s
sim --nodes 1000 --publishes 1 --partition 0.5:120000 --horizon-ms 300000 --out docs/sim/n1000-partition-2min
