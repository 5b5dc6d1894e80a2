/** Server ids: `inf-` and the server number, zero-padded to at least four digits. */
export function formatServerId(number: number): string {
  if (!Number.isInteger(number) || number < 1) throw new RangeError(`invalid server number ${number}`);
  return `inf-${String(number).padStart(4, '0')}`;
}
