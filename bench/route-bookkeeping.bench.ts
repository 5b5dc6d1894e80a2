/**
 * What the drain bookkeeping costs the inference hot path per request, in isolation:
 * taking the job's route and giving it back (route-table.ts: a Map lookup, an increment
 * with the last-use time, a decrement) against what the hot path did before it (a Map
 * lookup of the route and a Map write of the last-use time). Rounds interleaved; CPU
 * time per operation. The end-to-end figure is bench/routing.bench.ts's CPU per request.
 *
 *   node --import tsx bench/route-bookkeeping.bench.ts
 */
import { RouteEntry, RouteTable } from '../src/lifecycle/route-table.js';
import { machine, summarize, table, writeResult } from './lib/stats.js';

const OPERATIONS = Number(process.env.BENCH_OPERATIONS ?? 5_000_000);
const ROUNDS = 5;

const routes = new Map<string, object>([['a1', {}]]);
const lastUsed = new Map<string, number>();
function previous(): unknown {
  const route = routes.get('a1');
  if (route) lastUsed.set('a1', Date.now());
  return route;
}

const routeTable = new RouteTable();
routeTable.set(new RouteEntry('a1', 'inf-0001', 'http://127.0.0.1:1', 'a1'));
function counted(): unknown {
  const route = routeTable.acquire('a1');
  route?.release();
  return route;
}

function nsPerOperation(work: () => unknown): number {
  const started = process.cpuUsage();
  for (let i = 0; i < OPERATIONS; i++) work();
  const used = process.cpuUsage(started);
  return ((used.user + used.system) * 1000) / OPERATIONS;
}

const samples: Record<string, number[]> = { previous: [], counted: [] };
nsPerOperation(previous); // warm-up: both optimized before measuring
nsPerOperation(counted);
for (let round = 0; round < ROUNDS; round++) {
  samples.previous!.push(nsPerOperation(previous));
  samples.counted!.push(nsPerOperation(counted));
}
const result = {
  machine: machine(),
  operations_per_round: OPERATIONS,
  rounds: ROUNDS,
  ns_per_request: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])),
};
const file = writeResult('route-bookkeeping', result);
console.log(
  table(
    ['per request', 'CPU (median of rounds)', 'range'],
    [
      ['before: route lookup + last-use Map write', 'previous'],
      ['now: route lookup + in-flight count up and down', 'counted'],
    ].map(([label, key]) => {
      const s = result.ns_per_request[key!]!;
      return [label!, `${s.median.toFixed(1)} ns`, `${s.min.toFixed(1)}-${s.max.toFixed(1)} ns`];
    }),
  ),
);
console.log(`\nraw results: ${file}`);
