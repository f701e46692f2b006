#!/usr/bin/env bash
# One probe run: start pyvoy on the probe app, drive it with h2load, report req/s, CPU us/req
# of the whole Envoy process and context switches/req (summed over its threads).
# usage: benchmarks/grpc_pyvoy_probe.sh MODE SPIN THREADS [WORKER_THREADS] [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1 spin=$2 threads=$3 workers=${4:-2} secs=${5:-3} clients=${6:-8}
port=$((20000 + RANDOM % 20000))
printf '\x00\x00\x00\x00\x00' > /tmp/probe_body.bin
PYTHONPATH=benchmarks PROBE_MODE=$mode PROBE_SPIN=$spin PROBE_THREADS=$threads \
  build/pyvoy-venv/bin/pyvoy --port "$port" --worker-threads "$workers" --log-level error grpc_pyvoy_probe:app \
  >/tmp/probe_server.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
epid=$(pgrep -P $pid | head -1 || true); epid=${epid:-$pid}
h2load -n 500 -c 2 -d /tmp/probe_body.bin -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$port/p.S/M" >/dev/null 2>&1
stat() { awk '{print $14+$15}' /proc/$epid/stat; }
csw() { cat /proc/$epid/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
c0=$(stat); s0=$(csw)
out=$(h2load -D "$secs" -c "$clients" -m 1 -d /tmp/probe_body.bin -H 'content-type: application/grpc' \
  -H 'te: trailers' "http://127.0.0.1:$port/p.S/M" 2>&1)
c1=$(stat); s1=$(csw)
reqs=$(echo "$out" | awk '/^requests:/{print $8}')
rate=$(echo "$out" | awk '/^finished in/{print $4}')
tck=$(getconf CLK_TCK)
echo "mode=$mode spin=$spin ort_threads=$threads envoy_workers=$workers clients=$clients succeeded=$reqs rate=$rate" \
  "cpu_us_per_req=$(( (c1-c0) * 1000000 / tck / (reqs>0?reqs:1) ))" \
  "csw_per_req=$(awk -v a=$s0 -v b=$s1 -v n=$reqs 'BEGIN{printf "%.2f", (b-a)/(n>0?n:1)}')" \
  "threads=$(ls /proc/$epid/task | wc -l)"
