/**
 * Prompts missing at start: the standard set is what scripts/generate-prompts.sh
 * makes (`--list`); the missing ones are made by it (espeak-ng and sox) into a
 * private directory beside the prompts and renamed into place one by one, so
 * processes sharing a prompts directory never read a half-written file and an
 * operator's own recordings are never overwritten.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const PROMPT_SCRIPT = join(import.meta.dirname, '..', 'scripts', 'generate-prompts.sh');

function run(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('sh', [script, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${stderr.trim() || err.message}`.slice(0, 500)));
      else resolve(stdout);
    });
  });
}

/** The names of the standard prompts (what the script makes). */
export async function standardPromptNames(script = PROMPT_SCRIPT): Promise<string[]> {
  return (await run(script, ['--list']))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export interface Generated {
  /** The standard prompt names. */
  standard: string[];
  /** Prompts made now and placed in the directory. */
  generated: string[];
  /** Why generation failed (espeak-ng or sox not installed, ...). */
  error?: string;
}

/**
 * Makes the standard prompts that `have` lacks into `dir` (unless `generate`
 * is false: then it only reports them).
 */
export async function generateMissingPrompts(
  dir: string,
  have: ReadonlySet<string>,
  o: { generate: boolean; script?: string },
): Promise<Generated> {
  const script = o.script ?? PROMPT_SCRIPT;
  const standard = await standardPromptNames(script);
  const missing = standard.filter((n) => !have.has(n));
  if (!missing.length || !o.generate) return { standard, generated: [] };
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, '.generating-'));
  try {
    await run(script, [tmp, ...missing]);
    const generated: string[] = [];
    for (const f of await readdir(tmp)) {
      const name = f.replace(/\.wav$/, '');
      if (f === name || !missing.includes(name)) continue;
      // Someone (an operator, another process) placed it meanwhile: theirs stays.
      if (await exists(join(dir, f))) continue;
      await rename(join(tmp, f), join(dir, f));
      generated.push(name);
    }
    return { standard, generated };
  } catch (e) {
    return { standard, generated: [], error: (e as Error).message };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
