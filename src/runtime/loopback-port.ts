import net from 'node:net';

/**
 * A TCP port that is free on 127.0.0.1 right now. It is not reserved: whoever binds it
 * first gets it, so callers must cope with losing it (the process runtime's worker exits
 * and is restarted on another port).
 */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * `count` distinct TCP ports free on 127.0.0.1 right now, none of them in `taken`. Each
 * probe stays bound until all are found: probes closed one after another may be handed
 * the same port twice (a foreign server's HTTP and gRPC ports once collided so).
 */
export async function freeLoopbackPorts(count: number, taken: readonly number[] = []): Promise<number[]> {
  const held: net.Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = net.createServer();
      held.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
      });
      if (!taken.includes(port)) ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}
