#!/usr/bin/env python3
"""The checker behind `make check-listings`: the C in the lessons is tested like code.

A lesson shows two kinds of C:

- Excerpts of its stage's code: a ```c block with no annotation. Every line of it must be a
  line of the stage's sources (leading spaces aside), so that a lesson never quotes code
  that is not there. A line that is only `...` or `/* ... */` stands for lines left out.
- Listings: versions of the code that the lesson builds on the way, or shows to be wrong.
  An HTML comment on the line before the block says what the listing is and what it claims:

      <!-- listing NAME: MODE; CLAIM -->

  NAME (say 7.2) is unique in the lesson. MODE says how the listing changes a copy of the
  stage's folder: `file FILE` (the block is all of FILE, new or replacing it), `function
  FILE` (the block holds whole functions, each replacing the function of that name in FILE),
  `patch` (the block, a ```diff, is a unified diff against the stage's files), or `remove
  FILE...` (those files are taken away; the block then shows the code that needs them). A
  MODE may start with `after NAME,` to change the result of an earlier listing instead, or
  with `on FOLDER,` to change another stage's folder (the one before, say), still graded as
  this lesson's stage.
  CLAIM is `does not compile` or `does not link` (the build fails: a ``` block annotated
  `<!-- listing NAME: error -->` quotes the compiler's words, and each of its lines must be
  in what the compiler says, line and column numbers aside, and every error the compiler
  gives must be quoted), `compiles`, or `is wrong: TEST[, TEST...]` (it compiles, and each
  test of the suite named fails against it). After a wrong listing, a ``` block annotated
  `<!-- listing NAME: says -->` quotes what the suite says of it: each of its lines must be
  in what those tests print, where numbers may differ (times, line numbers) and `...` stands
  for any text.

Every listing is built as the lesson's "Build it alone" line builds the stage, with
-Werror added (the lessons say why), in build/listings/. A wrong one is then run through
`make check-stepNN SERVER=... POOL=...` with the test builds' short timings.

    python3 tests/listings.py [README.md ...]     (default: every stage's README.md)
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import tools

ROOT = tools.ROOT
OUT = ROOT / "build" / "listings"

failures = []


def fail(where, text):
    failures.append(f"{where}: {text}")
    print(f"  FAILED {where}: {text}", flush=True)


def compiler():
    """The lesson's cc line, -Werror added."""
    return ["cc", *tools.stage_flags(), "-Werror"]


def blocks(readme):
    """Yields (line number, language, (NAME, the rest) of its `listing` annotation or None,
    text) for each fenced block."""
    for f in tools.fences(readme):
        note = re.fullmatch(r"listing\s+(\S+?):\s*(.*)", f.note or "", re.S)
        yield f.line, f.lang, note.groups() if note else None, f.text + "\n"


def stage_of(readme):
    """The stage folder and its number, from the lesson's path."""
    folder = readme.resolve().parent
    return folder, int(re.match(r"step(\d\d)-", folder.name).group(1))


# --- Excerpts -------------------------------------------------------------------------------

def check_excerpt(folder, where, text):
    code = set()
    for source in sorted(folder.glob("*.[ch]")):
        code.update(line.strip() for line in source.read_text().splitlines())
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in ("", "...") or re.fullmatch(r"/\* \.\.\..*\*/", stripped) or stripped in code:
            continue
        fail(where, f"this line of a C excerpt is not in {folder.name}'s code: {stripped}")
        return


# --- Listings -------------------------------------------------------------------------------

def function_span(source, name):
    """The start and end offsets of the definition of function name in source, or None."""
    pattern = re.compile(r"^[A-Za-z_][^;{}()]*\b" + re.escape(name) + r"\s*\([^;{}]*\)\s*\{",
                         re.M)
    match = pattern.search(source)
    if not match:
        return None
    start = match.start()
    # Take the comment right above the function with it.
    above = source.rfind("\n\n", 0, start)
    comment = source[above + 2:start] if above >= 0 else ""
    if comment.lstrip().startswith("/*") and comment.rstrip().endswith("*/"):
        start = above + 2
    depth, at = 0, match.end() - 1
    while at < len(source):
        depth += {"{": 1, "}": -1}.get(source[at], 0)
        at += 1
        if depth == 0:
            return start, at
    return None


def functions_in(text):
    """The names of the functions the block defines, in order."""
    return re.findall(r"^[A-Za-z_][^;{}()\n]*?\b(\w+)\s*\([^;{}]*\)\s*\{", text, re.M)


def apply_listing(where, mode, text, work):
    """Changes the copy of the stage in work as the listing says; False if it cannot."""
    words = mode.split()
    kind, files = words[0], words[1:]
    if kind == "file":
        (work / files[0]).write_text(text)
    elif kind == "remove":
        for name in files:
            (work / name).unlink()
        check_excerpt(work, where, text)
    elif kind == "function":
        path = work / files[0]
        source = path.read_text()
        for name in functions_in(text):
            span = function_span(source, name)
            new = text[function_span(text, name)[0]:function_span(text, name)[1]]
            if span is None:
                fail(where, f"{files[0]} has no function {name} to replace")
                return False
            source = source[:span[0]] + new + source[span[1]:]
        path.write_text(source)
    elif kind == "patch":
        run = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch", "-s"], cwd=work,
                             input=text, text=True, capture_output=True)
        if run.returncode != 0:
            fail(where, f"the patch does not apply to the stage's code:\n{run.stdout}{run.stderr}")
            return False
    else:
        fail(where, f"unknown mode {kind!r}")
        return False
    return True


def base_of(where, name, mode, folder, results):
    """The folder that a listing changes, and the rest of its mode: the stage's own folder,
    an earlier listing's result (`after NAME,`), or another stage's folder (`on FOLDER,`);
    None (and said why) when there is no such folder."""
    if mode.startswith("after "):
        earlier, _, mode = (part.strip() for part in mode[len("after "):].partition(","))
        if earlier not in results:
            fail(where, f"listing {name} comes after {earlier}, which is not before it")
            return None, mode
        return results[earlier], mode
    if mode.startswith("on "):
        other, _, mode = (part.strip() for part in mode[len("on "):].partition(","))
        if not (ROOT / other / "main.c").is_file():
            fail(where, f"listing {name} is on {other}, which is no stage's folder")
            return None, mode
        return ROOT / other, mode
    return folder, mode


def build(work, binary):
    """Compiles every .c file of the folder; returns (exit status, what the compiler said)."""
    sources = sorted(p.name for p in work.glob("*.c"))
    run = subprocess.run(compiler() + ["-o", str(binary)] + [f"{work.name}/{s}" for s in sources],
                         cwd=work.parent, capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def said(expected, actual):
    """What does not match between the quoted compiler output and what the compiler said:
    the quoted lines that are in no line it said, then the errors it said that no quoted line
    gives (a student sees them all). A quoted line matches where line and column numbers
    differ, quotes are typographic (‘’, as gcc prints them in a UTF-8 locale) or plain, and
    `...` stands for any text."""
    def loose(text):
        return re.sub(r":\d+:\d+:", ":N:N:", text.replace("\u2018", "'").replace("\u2019", "'"))
    lines = loose(actual).splitlines()
    patterns = [".*".join(re.escape(piece) for piece in quoted.strip().split("..."))
                for quoted in loose(expected).splitlines() if quoted.strip()]
    missing = [pattern for pattern in patterns
               if not any(re.search(pattern, line) for line in lines)]
    unquoted = [line for line in lines if (": error:" in line or "undefined reference" in line)
                and "ld returned" not in line  # the linker's summary of the errors above
                and not any(re.search(pattern, line) for pattern in patterns)]
    return [re.sub(r"\\(.)", r"\1", m) for m in missing] + unquoted


def quoted_in(quote, output):
    """The quoted lines that are in no line of output: numbers may differ, `...` is any
    text."""
    lines = output.splitlines()
    missing = []
    for quoted in quote.splitlines():
        if not quoted.strip():
            continue
        pattern = ".*".join(re.sub(r"\d+", lambda m: r"\d+", re.escape(piece))
                            for piece in quoted.strip().split("..."))
        if not any(re.search(pattern, line) for line in lines):
            missing.append(quoted)
    return missing


def check_wrong(where, number, work, tests, says=None):
    """Builds the listing with the test timings and runs each named test against it; what the
    lesson quotes of the suite's words (says) must be in what they print."""
    binary = work.parent / "server"
    sleep, head = tools.test_timings()  # so that a wrong listing fails its test quickly
    sources = sorted(p.name for p in work.glob("*.c"))
    run = subprocess.run(compiler() + [f"-DSLEEP_SECONDS={sleep}", f"-DHEAD_TIMEOUT_SECONDS={head}",
                                       "-o", str(binary)] + [str(work / s) for s in sources],
                         capture_output=True, text=True)
    if run.returncode != 0:
        fail(where, f"claims to compile, but does not:\n{run.stderr}")
        return
    printed = []
    for test in tests:
        log = work.parent / f"{test}.xml"  # Check's results, read to know what failed
        log.unlink(missing_ok=True)
        command = ["make", "-s", "--no-print-directory", f"check-step{number:02d}",
                   f"SERVER={binary}", f"CK_RUN_CASE={test}", f"CK_XML_LOG_FILE_NAME={log}",
                   f"SERVER_SLEEP_SECONDS={sleep}", f"SERVER_HEAD_TIMEOUT_SECONDS={head}"]
        # The listing's own pool size and default REQUESTS, as its main.c defines them.
        main = (work / "main.c").read_text()
        for name, setting in (("THREAD_COUNT", "SERVER_THREADS"), ("DEFAULT_REQUESTS",
                                                                   "SERVER_REQUESTS")):
            defined = re.search(rf"^#define {name} (\d+)$", main, re.M)
            if defined:
                command.append(f"{setting}={defined.group(1)}")
        if (work / "pool.c").exists():
            command.append(f"POOL={work}")
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        output = result.stdout + result.stderr
        failed = any(r["result"] != "success" and test in (ran, r["lesson"])
                     for (ran, _), r in tools.check_results(log)[0].items())
        if result.returncode == 0 or not failed:
            fail(where, f"claims that {test} fails against it, but it does not:\n{output[-2000:]}")
        else:
            print(f"  {where}: {test} fails, as the lesson says", flush=True)
        printed.append(output)
    missing = quoted_in(says, "\n".join(printed)) if says is not None else []
    if missing:
        fail(where, f"the suite does not say {missing[0]!r} of this listing; it says:\n"
                    + "\n".join(printed)[-3000:])
    elif says is not None:
        print(f"  {where}: the suite says what the lesson quotes", flush=True)


def check_lesson(readme):
    folder, number = stage_of(readme)
    found = list(blocks(readme))
    results = {}
    errors = {name: text for _, _, note, text in found
              if note and note[1] == "error" for name in [note[0]]}
    says = {name: text for _, _, note, text in found
            if note and note[1] == "says" for name in [note[0]]}
    print(f"{readme.relative_to(ROOT)}", flush=True)
    for line, language, note, text in found:
        where = f"{readme.relative_to(ROOT)}:{line}"
        if note is None:
            if language == "c":
                check_excerpt(folder, where, text)
            continue
        name, rest = note
        if rest in ("error", "says"):
            continue
        mode, _, claim = (part.strip() for part in rest.partition(";"))
        base, mode = base_of(where, name, mode, folder, results)
        if base is None:
            continue
        work = OUT / f"{folder.name}-{name}" / folder.name
        shutil.rmtree(work.parent, ignore_errors=True)
        shutil.copytree(base, work, ignore=shutil.ignore_patterns("*.md", "*.svg"))
        if not apply_listing(where, mode, text, work):
            continue
        results[name] = work
        status, output = build(work, work.parent / f"step{number:02d}")
        if claim in ("does not compile", "does not link"):
            link = "undefined reference" in output or "ld returned" in output
            if status == 0 or (claim == "does not compile") == link:
                fail(where, f"listing {name} claims it {claim}, but the build "
                            f"{'succeeded' if status == 0 else 'failed otherwise'}:\n{output}")
            elif name not in errors:
                fail(where, f"listing {name} {claim}: the lesson must quote the error "
                            f"(a block annotated <!-- listing {name}: error -->)")
            else:
                missing = said(errors[name], output)
                if missing:
                    fail(where, f"the compiler's words and the lesson's quote differ, for "
                                f"listing {name}, at: {missing[0]!r}; it says:\n{output}")
                else:
                    print(f"  listing {name}: {claim}, with the words the lesson quotes")
        elif claim == "compiles":
            if status != 0:
                fail(where, f"listing {name} claims it compiles, but:\n{output}")
            else:
                print(f"  listing {name}: compiles")
        elif claim.startswith("is wrong:"):
            if status != 0:
                fail(where, f"listing {name} claims it compiles and is wrong, but:\n{output}")
                continue
            tests = [t.strip() for t in claim[len("is wrong:"):].split(",") if t.strip()]
            check_wrong(where, number, work, tests, says.get(name))
        else:
            fail(where, f"listing {name}: unknown claim {claim!r}")


def main():
    readmes = [Path(a).resolve() for a in sys.argv[1:]] or sorted(ROOT.glob("step[0-9][0-9]-*/README.md"))
    for readme in readmes:
        check_lesson(readme)
    if failures:
        print(f"check-listings: {len(failures)} claims do not hold", file=sys.stderr)
        sys.exit(1)
    print("check-listings: every listing does what its lesson says, and every excerpt is in "
          "the code")


if __name__ == "__main__":
    main()
