/**
 * How the router puts a job's model into a pooled foreign server's repository: the
 * server started empty (warm pool), and its guard links the model in when the server is
 * handed to a job (src/worker/guard-repository.ts). Shared by the router (worker client,
 * runtimes) and the guard, so both spell it the same way.
 */

/** `PUT <path>/<name>` with `{"model": "<store model id>"}`: link the model in under `name`. */
export const GUARD_REPOSITORY_PATH = '/modeldock/repository';

/**
 * The guard's environment variable naming the model store as the guard sees it. Set only
 * for a pooled server: a server started for one job has that model mounted and no link to make.
 */
export const GUARD_STORE_DIR_ENV = 'MODELDOCK_GUARD_STORE_DIR';
