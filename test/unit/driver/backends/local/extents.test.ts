import { expect } from 'chai';

import { blocksOf, parseFilefrag } from '../../../../../src/driver/backends/local/extents.js';
import { ContentChecksum } from '../../../../../src/driver/backends/local/copy.js';

const output = `Filesystem type is: ef53
File size of disk.img is 4294967296 (1048576 blocks of 4096 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..     255:    3456000..   3456255:    256:
   1:      256..     511:    3456256..   3456511:    256:             unwritten
   2:     1024..    1279:    3500000..   3500255:    256:    3456512:
   3:     1280..    1535:    3600000..   3600255:    256:    3500256: last,eof
disk.img: 3 extents found
`;

describe('local backend: data extents', function () {
  it('reads data extents from filefrag -v, skipping unwritten ones and merging neighbours', function () {
    expect(parseFilefrag(output)).to.deep.equal([
      { start: 0, end: 256 * 4096 },
      { start: 1024 * 4096, end: 1536 * 4096 },
    ]);
  });

  it('gives up (undefined) on output it does not understand', function () {
    expect(parseFilefrag('filefrag: Operation not supported\n')).to.equal(undefined);
  });

  it('maps extents to the 1 MiB blocks they touch, each once', function () {
    const MiB = 1 << 20;
    expect(
      blocksOf(
        [
          { start: 0, end: 4096 },
          { start: MiB - 1, end: MiB + 1 },
          { start: 3 * MiB, end: 5 * MiB },
        ],
        MiB,
      ),
    ).to.deep.equal([0, 1, 3, 4]);
  });
});

describe('local backend: content checksum', function () {
  const block = (fill: number) => Buffer.alloc(1 << 20, fill);
  const sum = (blocks: Array<[number, Buffer]>) => {
    const checksum = new ContentChecksum();
    for (const [i, data] of blocks) checksum.add(i, data);
    return checksum.value();
  };

  it('depends on the data and on where it sits', function () {
    const base = sum([
      [0, block(1)],
      [5, block(2)],
    ]);
    expect(
      sum([
        [0, block(1)],
        [5, block(2)],
      ]),
    ).to.equal(base);
    expect(
      sum([
        [0, block(1)],
        [6, block(2)],
      ]),
    ).not.to.equal(base);
    const changed = block(2);
    changed[12345] = 7;
    expect(
      sum([
        [0, block(1)],
        [5, changed],
      ]),
    ).not.to.equal(base);
  });

  it('names its algorithm', function () {
    expect(sum([])).to.match(/^crc32-per-MiB\+sha256:[0-9a-f]{64}$/);
  });
});
