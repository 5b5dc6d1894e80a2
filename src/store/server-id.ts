/** Server ids: `inf-` and the server number, zero-padded to at least four digits. */
export function formatServerId(number: number): string {
  if (!Number.isInteger(number) || number < 1) throw new RangeError(`invalid server number ${number}`);
  return `inf-${String(number).padStart(4, '0')}`;
}

export function parseServerId(serverId: string): number | undefined {
  const match = /^inf-(\d{4,})$/.exec(serverId);
  return match ? Number(match[1]) : undefined;
}
