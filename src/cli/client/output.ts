/**
 * How the client commands print: aligned tables (cli-table3) for people, JSON for
 * scripts (`--json`), colour (picocolors) only when stdout is a terminal and NO_COLOR is
 * not set, and the small formats the tables share (ages, durations, sizes).
 */
import Table from 'cli-table3';
import pc from 'picocolors';

export type Colours = ReturnType<typeof pc.createColors>;

/**
 * Colour when asked for (--color / --no-color, else NO_COLOR / FORCE_COLOR through
 * loadClientConfig), otherwise only on a terminal. picocolors' own check would also turn
 * it on under CI=… with no terminal.
 */
export function colourWanted(stream: { isTTY?: boolean }, preference: boolean | undefined): boolean {
  return preference ?? stream.isTTY === true;
}

export class Output {
  readonly c: Colours;

  constructor(
    readonly json: boolean,
    colour: boolean,
    private readonly out: NodeJS.WritableStream = process.stdout,
  ) {
    this.c = pc.createColors(colour);
  }

  line(text = ''): void {
    this.out.write(`${text}\n`);
  }

  /** One JSON document (pretty) for `--json`. */
  data(value: unknown): void {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON document per line, for streams (`events --json`, `ops --follow --json`). */
  record(value: unknown): void {
    this.out.write(`${JSON.stringify(value)}\n`);
  }

  table(head: string[], rows: string[][]): void {
    this.out.write(
      `${renderTable(
        head.map((h) => this.c.bold(h)),
        rows,
      )}\n`,
    );
  }

  /** Key: value lines, keys aligned. */
  fields(entries: [string, string][]): void {
    const width = Math.max(0, ...entries.map(([k]) => k.length));
    for (const [key, value] of entries) this.line(`${this.c.dim(`${key.padEnd(width)}`)}  ${value}`);
  }

  state(state: string | null | undefined): string {
    if (!state) return '-';
    const colour = STATE_COLOURS[state];
    return colour ? this.c[colour](state) : state;
  }
}

const STATE_COLOURS: Record<string, 'green' | 'yellow' | 'red' | 'dim' | 'cyan'> = {
  ready: 'green',
  succeeded: 'green',
  creating: 'yellow',
  loading: 'yellow',
  unloading: 'yellow',
  terminating: 'yellow',
  running: 'cyan',
  unloaded: 'cyan',
  failed: 'red',
  terminated: 'dim',
  none: 'dim',
};

/** Borderless, like `docker ps`: columns two spaces apart. */
export function renderTable(head: string[], rows: string[][]): string {
  const blank = { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '' };
  const table = new Table({
    head,
    chars: {
      ...blank,
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  table.push(...rows);
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** How long ago: 12s, 5m, 3h, 2d. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}
