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

/**
 * The guard's environment with the router's store (MODELDOCK_K8S_STORE=router), where no
 * store is mounted: the router's URL as the Pod reaches it, and the most the Pod's
 * repository holds. A pooled server's guard fetches the model it is handed from there
 * (instead of linking it); a server started for one job has its guard fetch that model,
 * under the job's name, before the server starts (GUARD_FETCH_MODEL_ENV, GUARD_FETCH_AS_ENV).
 */
export const GUARD_STORE_URL_ENV = 'MODELDOCK_GUARD_STORE_URL';
export const GUARD_FETCH_MAX_BYTES_ENV = 'MODELDOCK_GUARD_FETCH_MAX_BYTES';
export const GUARD_FETCH_MODEL_ENV = 'MODELDOCK_GUARD_FETCH_MODEL';
export const GUARD_FETCH_AS_ENV = 'MODELDOCK_GUARD_FETCH_AS';
