import type { ListOptions, Page } from './backend.js';
import { aborted } from '../csi/errors.js';

const tokenPrefix = 'after:';

/**
 * One page of `entries` (any order; sorted here by id). A token names the last id returned,
 * so a page never repeats an entry when entries before it are deleted or added meanwhile.
 */
export function paginate<T>(
  entries: T[],
  idOf: (entry: T) => string,
  options: ListOptions,
): Page<T> {
  const sorted = [...entries].sort((a, b) => compare(idOf(a), idOf(b)));
  let start = 0;
  if (options.startingToken !== undefined) {
    if (!options.startingToken.startsWith(tokenPrefix)) {
      throw aborted(`starting_token "${options.startingToken}" was not issued by this driver`);
    }
    const after = options.startingToken.slice(tokenPrefix.length);
    start = sorted.findIndex((entry) => compare(idOf(entry), after) > 0);
    if (start === -1) start = sorted.length;
  }
  const end =
    options.maxEntries > 0 ? Math.min(start + options.maxEntries, sorted.length) : sorted.length;
  const page = sorted.slice(start, end);
  const last = page.at(-1);
  return end < sorted.length && last !== undefined
    ? { entries: page, nextToken: tokenPrefix + idOf(last) }
    : { entries: page };
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
