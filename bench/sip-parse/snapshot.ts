/**
 * A copy of libs/sip/src/message at a git revision, under bench/sip-parse/.snapshots/<rev>/
 * (inside the repo so tsx applies the project's tsconfig; spec files removed so
 * `npm test` never picks the copy up; the folder is git-ignored).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export function snapshot(rev: string): string {
  const sha = execFileSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(import.meta.dirname, '.snapshots', sha);
  const index = join(dir, 'libs', 'sip', 'src', 'message', 'index.ts');
  if (!existsSync(index)) {
    mkdirSync(dir, { recursive: true });
    const tar = execFileSync('git', ['archive', sha, 'libs/sip/src/message'], { cwd: ROOT });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
  }
  const clean = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) clean(p);
      else if (f.endsWith('.spec.ts')) rmSync(p);
    }
  };
  clean(dir);
  return index;
}
