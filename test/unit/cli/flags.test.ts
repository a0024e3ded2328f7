import { expect } from 'chai';

import { parseCommandFlags, type FlagTable } from '../../../src/cli/flags.js';

const table: FlagTable = {
  name: { help: 'a string' },
  hooks: { help: 'a Go boolean', boolean: true },
};
const parse = (args: string[]) => parseCommandFlags(table, args);

describe('cli: one flag table per command', function () {
  it('reads booleans as Go does, and keeps them strings for the options', function () {
    expect(parse(['--hooks']).values).to.deep.equal({ hooks: 'true' });
    expect(parse(['--hooks=false']).values).to.deep.equal({ hooks: 'false' });
    expect(parse(['--hooks', '0', '--name', 'x']).values).to.deep.equal({ hooks: '0', name: 'x' });
    expect(parse(['--hooks', '--name=x']).values).to.deep.equal({ hooks: 'true', name: 'x' });
  });

  it('takes the last of a repeated flag, and an empty value given with =', function () {
    expect(parse(['--name=a', '--name=b']).values).to.deep.equal({ name: 'b' });
    expect(parse(['--name=']).values).to.deep.equal({ name: '' });
  });

  it('says what is unknown, stray or missing', function () {
    expect(() => parse(['--nmae=x'])).to.throw('unknown flag --nmae (known: --name, --hooks)');
    expect(() => parse(['-x'])).to.throw(/unknown flag --x/);
    expect(() => parse(['x'])).to.throw('unexpected argument "x"');
    expect(() => parse(['--hooks', 'yes'])).to.throw('unexpected argument "yes"');
    expect(() => parse(['--name'])).to.throw('--name needs a value (--name=<value>)');
    expect(() => parse(['--name', '--hooks'])).to.throw('--name needs a value');
    expect(() => parse(['--help=1'])).to.throw('--help takes no value');
  });

  it('asks for help with --help or -h', function () {
    expect(parse(['--help'])).to.deep.equal({ help: true, values: {} });
    expect(parse(['-h', '--name=x'])).to.deep.equal({ help: true, values: { name: 'x' } });
  });
});
