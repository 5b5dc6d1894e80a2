/**
 * Which shared worker a model goes to: the one decision of shared placement, kept apart
 * so the rule can change (by measured memory, with eviction) without touching how
 * servers are brought up. Pure: it sees the running shared workers and the models each
 * hosts, and answers with a worker or "open a new one".
 */

/** A running shared worker and the names its models are served under (loaded or on their way). */
export interface SharedWorkerLoad {
  name: string;
  hosted: readonly string[];
}

export type PlacementChoice = { worker: string } | { open: true };

export interface SharedPlacementRule {
  /** Where the model served under `name` goes. */
  choose(name: string, workers: readonly SharedWorkerLoad[]): PlacementChoice;
}

/**
 * The simple rule: the worker hosting the fewest models, at most `maxPerWorker` each
 * (MODELDOCK_SHARED_JOBS_PER_WORKER), which spreads load; the first in name order on a
 * tie, so placement is predictable. A worker that already hosts the name is not a
 * candidate: a job's second replica must not land on its first one's worker (one name
 * per worker), and it would gain the job nothing.
 */
export function fewestModelsRule(maxPerWorker: number): SharedPlacementRule {
  return {
    choose(name, workers) {
      let best: SharedWorkerLoad | undefined;
      for (const worker of [...workers].sort((a, b) => a.name.localeCompare(b.name))) {
        if (worker.hosted.length >= maxPerWorker || worker.hosted.includes(name)) continue;
        if (!best || worker.hosted.length < best.hosted.length) best = worker;
      }
      return best ? { worker: best.name } : { open: true };
    },
  };
}
