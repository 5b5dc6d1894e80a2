/**
 * The router's request budgets (request-budget.ts): which budget a route's body draws on
 * and at what cost. Inference has its own, so a flood of it leaves administration and
 * health answering; bodies parsed into JSON are charged at what parsing costs.
 */
import type { FastifyRequest } from 'fastify';
import { ByteBudget, type BudgetChoice } from '../request-budget.js';
import { REQUEST_COST_MULTIPLE } from '../worker-limits.js';

export interface RouterBudgets {
  inference: ByteBudget;
  administration: ByteBudget;
}

/** Each budget bounds `limitBytes` (MODELDOCK_REQUEST_MEMORY) of bodies held at once. */
export function routerBudgets(limitBytes: number): RouterBudgets {
  return {
    inference: new ByteBudget('inference', limitBytes),
    administration: new ByteBudget('administration', limitBytes),
  };
}

/** What a request's body costs, by its route; undefined: not charged. */
export function budgetOf(budgets: RouterBudgets, request: FastifyRequest): BudgetChoice | undefined {
  const url = request.routeOptions.url;
  // No route: no body is read. /v2: bodies are streamed to the worker, not held.
  if (url === undefined || url === '/v2' || url.startsWith('/v2/')) return undefined;
  // Kept as bytes and sent on unparsed (routes/v1.ts).
  if (url === '/v1/jobs/:job_id/infer') return { budget: budgets.inference, costPerByte: 1 };
  // Everything else is administration (or health, with no body), its JSON parsed: the
  // tree costs up to REQUEST_COST_MULTIPLE times the text (worker-limits.ts).
  return { budget: budgets.administration, costPerByte: REQUEST_COST_MULTIPLE };
}
