/** Worker output as text, shared by the runtimes' openLogs. */
/** A byte stream as UTF-8 text chunks (a character split across chunks stays whole); ends quietly on abort. */
export async function* textChunks(
  stream: NodeJS.ReadableStream,
  signal?: AbortSignal,
): AsyncIterable<string> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) {
      const text = decoder.decode(chunk as Buffer, { stream: true });
      if (text) yield text;
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  } finally {
    (stream as unknown as { destroy?: () => void }).destroy?.();
  }
}
