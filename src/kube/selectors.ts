/** A metav1.LabelSelector: every matchLabels pair and every expression must hold. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | string;
  values?: string[];
}

/**
 * Whether labels match the selector, as the API server decides it. An empty selector matches
 * everything; an unknown operator matches nothing (so a typo never selects every object).
 */
export function labelSelectorMatches(
  selector: LabelSelector,
  labels: Record<string, string> = {},
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((requirement) =>
    requirementMatches(requirement, labels),
  );
}

function requirementMatches(
  requirement: LabelSelectorRequirement,
  labels: Record<string, string>,
): boolean {
  const has = Object.hasOwn(labels, requirement.key);
  const value = labels[requirement.key];
  switch (requirement.operator) {
    case 'In':
      return has && (requirement.values ?? []).includes(value!);
    case 'NotIn':
      return !has || !(requirement.values ?? []).includes(value!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      return false;
  }
}

/** The query-string form (`a=b,c in (d,e),!f`) of a LabelSelector. */
export function labelSelectorToString(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  for (const requirement of selector.matchExpressions ?? []) {
    const values = [...(requirement.values ?? [])].sort().join(',');
    switch (requirement.operator) {
      case 'In':
        parts.push(`${requirement.key} in (${values})`);
        break;
      case 'NotIn':
        parts.push(`${requirement.key} notin (${values})`);
        break;
      case 'Exists':
        parts.push(requirement.key);
        break;
      case 'DoesNotExist':
        parts.push(`!${requirement.key}`);
        break;
      default:
        throw new Error(`unknown label selector operator "${requirement.operator}"`);
    }
  }
  return parts.join(',');
}

/**
 * Parses the query-string form of a label selector (`=`, `==`, `!=`, `in`, `notin`, `key`,
 * `!key`). Throws on syntax the API server would reject.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const selector: Required<LabelSelector> = { matchLabels: {}, matchExpressions: [] };
  for (const clause of splitClauses(text)) {
    let match: RegExpMatchArray | null;
    if ((match = clause.match(/^([^\s=!(),]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      selector.matchExpressions.push({
        key: match[1]!,
        operator: match[2] === 'in' ? 'In' : 'NotIn',
        values: match[3]!
          .split(',')
          .map((value) => value.trim())
          .filter((value) => value !== ''),
      });
    } else if ((match = clause.match(/^([^\s=!(),]+)\s*!=\s*([^\s=!(),]*)$/))) {
      selector.matchExpressions.push({ key: match[1]!, operator: 'NotIn', values: [match[2]!] });
    } else if ((match = clause.match(/^([^\s=!(),]+)\s*==?\s*([^\s=!(),]*)$/))) {
      selector.matchLabels[match[1]!] = match[2]!;
    } else if ((match = clause.match(/^!\s*([^\s=!(),]+)$/))) {
      selector.matchExpressions.push({ key: match[1]!, operator: 'DoesNotExist' });
    } else if ((match = clause.match(/^([^\s=!(),]+)$/))) {
      selector.matchExpressions.push({ key: match[1]!, operator: 'Exists' });
    } else {
      throw new Error(`invalid label selector clause "${clause}" in "${text}"`);
    }
  }
  return selector;
}

/** Splits on commas that are not inside parentheses. */
function splitClauses(text: string): string[] {
  const clauses: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ',' && depth === 0) {
      clauses.push(current.trim());
      current = '';
    } else {
      current += char;
    }
  }
  if (current.trim()) clauses.push(current.trim());
  return clauses.filter((clause) => clause !== '');
}

/**
 * Whether an object matches a field selector such as `metadata.name=x,spec.nodeName!=y`.
 * Fields are dotted paths into the object; a missing field compares as the empty string.
 */
export function fieldSelectorMatches(text: string, obj: unknown): boolean {
  for (const clause of splitClauses(text)) {
    const match = clause.match(/^([^=!]+?)\s*(==|=|!=)\s*(.*)$/);
    if (!match) throw new Error(`invalid field selector clause "${clause}" in "${text}"`);
    let value: unknown = obj;
    for (const part of match[1]!.split('.')) {
      value =
        value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    }
    const actual = value === undefined || value === null ? '' : String(value);
    if ((match[2] === '!=') === (actual === match[3])) return false;
  }
  return true;
}
