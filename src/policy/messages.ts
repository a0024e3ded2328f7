/**
 * Messages that stay writable at any scale: a status is one object (etcd stores at most about
 * 1.5 MiB of it) and condition messages are capped by the API, so a policy over thousands of
 * PVCs, or a snapshot error quoting a long backend reply, must never make a status write fail.
 */

import { MAX_MESSAGE_LENGTH } from '../api/index.js';

/** How many problems a summarised message spells out before counting the rest. */
export const MAX_LISTED_PROBLEMS = 3;

const ELLIPSIS = '…';

/** The text itself when short enough, otherwise its start and an ellipsis. */
export function capMessage(text: string, max = MAX_MESSAGE_LENGTH): string {
  return text.length <= max ? text : `${text.slice(0, max - ELLIPSIS.length)}${ELLIPSIS}`;
}

/**
 * Several problems in one message: the first few in full, the rest counted, the whole capped.
 * `where` says where the others can be read.
 */
export function summariseProblems(messages: readonly string[], where: string): string {
  if (messages.length <= MAX_LISTED_PROBLEMS) return capMessage(messages.join('; '));
  const listed = messages.slice(0, MAX_LISTED_PROBLEMS).join('; ');
  const rest = messages.length - MAX_LISTED_PROBLEMS;
  return capMessage(`${messages.length} problems: ${listed}; and ${rest} more (${where})`);
}
