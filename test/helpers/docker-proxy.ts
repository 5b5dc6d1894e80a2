/**
 * A recording proxy between a router and the real Docker engine: listens on loopback TCP
 * (point DOCKER_HOST at `tcp://127.0.0.1:<port>`), forwards every request to the engine's
 * socket unchanged (streams too: events, logs), and records what was asked. For calls that
 * name a container it looks the container up first (on the real socket), so a test can
 * check whose container each mutating call touched, even one it deleted.
 */
import Dockerode from 'dockerode';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { containerOf } from '../../src/runtime/docker/engine-calls.js';

export interface RecordedCall {
  method: string;
  /** Without the query string. */
  path: string;
  query: string;
  /** Parsed JSON body, when there was one. */
  body: unknown;
  /** Labels of the container the path names, looked up before the call; null: no such container. */
  targetLabels: Record<string, string> | null | undefined;
}

export interface DockerProxy {
  dockerHost: string;
  calls: RecordedCall[];
  close(): Promise<void>;
}

const SOCKET = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');

export async function startDockerProxy(): Promise<DockerProxy> {
  const docker = new Dockerode({ socketPath: SOCKET });
  const calls: RecordedCall[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        const [path = '', query = ''] = (request.url ?? '').split('?');
        const body = Buffer.concat(chunks);
        const container = containerOf(path);
        const targetLabels =
          container === undefined
            ? undefined
            : await docker
                .getContainer(container)
                .inspect()
                .then(
                  (info) => info.Config.Labels ?? {},
                  () => null,
                );
        let parsed: unknown;
        try {
          parsed = body.length > 0 ? JSON.parse(body.toString()) : undefined;
        } catch {
          parsed = '<not JSON>';
        }
        calls.push({ method: request.method ?? '', path, query, body: parsed, targetLabels });
        const upstream = http.request(
          { socketPath: SOCKET, method: request.method, path: request.url, headers: request.headers },
          (answer) => {
            response.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(response);
          },
        );
        upstream.on('error', () => response.destroy());
        response.on('close', () => upstream.destroy());
        upstream.end(body);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dockerHost: `tcp://127.0.0.1:${port}`,
    calls,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
