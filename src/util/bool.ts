/**
 * A boolean written the way Go's strconv.ParseBool reads it, as Kubernetes components parse
 * annotations and flags: 1, t, T, TRUE, true, True are true; 0, f, F, FALSE, false, False are
 * false; anything else (including "yes", " true" or "") is not a boolean and yields `undefined`.
 */
export function parseGoBool(value: string): boolean | undefined {
  switch (value) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      return undefined;
  }
}
