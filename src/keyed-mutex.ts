/**
 * Serializes work per key (a job id) while different keys run in parallel. Waiters run
 * in arrival order; a failing task does not block the ones queued behind it.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      // Only the last waiter for a key removes it, so the map does not grow without bound.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Whether some task for the key is running or queued. */
  isBusy(key: string): boolean {
    return this.tails.has(key);
  }
}
