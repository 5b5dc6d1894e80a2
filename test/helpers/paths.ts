import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const MODELS_DIR = path.join(REPO_ROOT, 'models');
export const DATASETS_DIR = path.join(REPO_ROOT, 'datasets');

/**
 * The images tests run. The same variables `modeldock images` builds under, so several
 * checkouts on one engine (each with its own tags) never test each other's images.
 */
export const WORKER_IMAGE = process.env.MODELDOCK_WORKER_IMAGE || 'modeldock/worker:latest';
export const ROUTER_IMAGE = process.env.MODELDOCK_ROUTER_IMAGE || 'modeldock/router:latest';
/** The image the built-in `mlserver` serving runtime runs on Docker (`modeldock images mlserver`). */
export const MLSERVER_IMAGE = process.env.MODELDOCK_MLSERVER_IMAGE || 'modeldock/mlserver:latest';
/** The image the built-in `triton` serving runtime runs on Docker (`modeldock images triton`). */
export const TRITON_IMAGE = process.env.MODELDOCK_TRITON_IMAGE || 'modeldock/triton:latest';
