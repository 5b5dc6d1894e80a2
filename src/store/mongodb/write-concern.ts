/**
 * The MongoDB store's durability settings: what it asks of the server by default, what
 * the URL may override, and which servers cannot honour what is configured. Pure logic;
 * MongoStore feeds it the URL and the server's own `hello` / `buildInfo` answers.
 *
 * An acknowledged answer of the router must mean the record is on stable storage (see
 * docs/database.md). On MongoDB that is `w: "majority"` (a majority of the replica set has
 * it, so no failover rolls it back) with `j: true` (in their on-disk journals).
 */

/** The write concern the store writes with: `w` as the driver takes it, `journal` = `j`. */
export interface EffectiveWriteConcern {
  w: number | string | undefined;
  journal: boolean | undefined;
}

/** What the server says about itself. */
export interface ServerFacts {
  /** `hello.setName`: a replica set member. */
  setName?: string;
  /** `hello.hosts`: the set's data-bearing members. */
  hosts?: string[];
  /** `hello.msg === 'isdbgrid'`: a mongos in front of a sharded cluster. */
  mongos: boolean;
  /** `buildInfo.ferretdbVersion`: FerretDB, which ignores write concerns. */
  ferretdbVersion?: string;
}

/** The URL's query options, names lower-cased (MongoDB's URL options are case-insensitive). */
function urlOptions(url: string): Set<string> {
  const query = url.split('?')[1] ?? '';
  return new Set([...new URLSearchParams(query).keys()].map((key) => key.toLowerCase()));
}

/**
 * Client options for what the URL leaves open: `w=majority`, `journal=true`,
 * `retryWrites=true`. What the URL sets wins (the driver would otherwise let these
 * options override the URL).
 */
export function durabilityDefaults(url: string): {
  writeConcern?: { w?: 'majority'; journal?: boolean };
  retryWrites?: boolean;
} {
  const given = urlOptions(url);
  const writeConcern = {
    ...(given.has('w') ? {} : { w: 'majority' as const }),
    ...(given.has('journal') ? {} : { journal: true }),
  };
  return {
    ...(Object.keys(writeConcern).length > 0 ? { writeConcern } : {}),
    ...(given.has('retrywrites') ? {} : { retryWrites: true }),
  };
}

const describe = (concern: EffectiveWriteConcern): string =>
  `w: ${JSON.stringify(concern.w ?? 1)}, j: ${concern.journal ?? false}`;

/**
 * Why this server cannot honour the write concern, or undefined when it can. The store
 * refuses to start with the reason: a router that acknowledged what the database may
 * still lose would break the contract silently.
 */
export function writeConcernRefusal(concern: EffectiveWriteConcern, server: ServerFacts): string | undefined {
  const w = concern.w ?? 1;
  if (w === 0) {
    return (
      `the write concern ${describe(concern)} asks for no acknowledgement: the store would answer before the ` +
      'database has anything and would never see a duplicate key; remove w=0 from MODELDOCK_DATABASE'
    );
  }
  if (server.ferretdbVersion !== undefined) {
    if (w === 1) return undefined;
    return (
      `the server is FerretDB${/^v?\d/.test(server.ferretdbVersion) ? ` ${server.ferretdbVersion}` : ''}, which ignores write concerns (it answers once its own ` +
      'backend committed the write) and replicates nothing, so ' +
      `${describe(concern)} cannot be honoured. Use MongoDB, or accept what FerretDB does ` +
      "(one server; its SQLite backend syncs every commit on its default settings) by adding w=1 to MODELDOCK_DATABASE's URL"
    );
  }
  if (typeof w === 'number' && w > 1) {
    if (server.mongos) return undefined; // The shards' replica sets answer for it.
    const members = server.setName ? (server.hosts?.length ?? 1) : 1;
    if (w > members) {
      return server.setName
        ? `the write concern ${describe(concern)} needs ${w} members but the replica set ${server.setName} has ${members} data-bearing members`
        : `the write concern ${describe(concern)} needs ${w} members but the server is a standalone mongod`;
    }
  }
  return undefined;
}
