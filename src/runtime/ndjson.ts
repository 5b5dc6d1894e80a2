/**
 * Splits a byte stream of newline-delimited JSON into objects. Chunks may end in the
 * middle of a line (or of a multi-byte character); a line is parsed only once its
 * newline has arrived. A malformed line is reported, not fatal.
 */
import { StringDecoder } from 'node:string_decoder';

export async function* parseNdjson(
  chunks: AsyncIterable<Buffer | string>,
  onMalformed?: (line: string, error: unknown) => void,
): AsyncGenerator<unknown> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of chunks) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line !== '') {
        try {
          yield JSON.parse(line);
        } catch (error) {
          onMalformed?.(line, error);
        }
      }
      newline = pending.indexOf('\n');
    }
  }
  const rest = (pending + decoder.end()).trim();
  if (rest !== '') {
    try {
      yield JSON.parse(rest);
    } catch (error) {
      onMalformed?.(rest, error);
    }
  }
}
