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
