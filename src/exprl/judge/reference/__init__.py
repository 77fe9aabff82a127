"""The reference judge: a deterministic, LLM-free checkpoint matcher that rewards work.

It grades a trace by which of the reference's stated results the trace itself *establishes*. It
is the judge of the synthetic coverage task (whose terse references state every intermediate
value) and of the tests, and it gives the calibration protocol a baseline whose error rates can
be computed by hand. A policy optimises what its judge scores, so the rules below are written
against the cheap ways of scoring without solving (`testing/hacking.py` generates them;
docs/architecture.md, "Attack families", lists each with its defence).

Where each job lives (this package holds the rules; the backend is beside the other backends):

    patterns.py      every regular expression, declared once with examples that are tested
    arithmetic.py    a value's normal form, exact arithmetic of plain computations, equivalence
    statements.py    what a text states as a result (`read_statements`, `stated_computations`)
    checkpoints.py   the answer key a reference gives (`answer_key`), grading a text against it (`assess`)
    exprl.judge.backends.reference   `ReferenceBackend`: a request in, a judgment out

Rules (the `name` carries a version; change it whenever a rule below changes, because the judge
name is part of every cache key):

* **Checkpoints.** `extract_checkpoints` reads the results the reference states, in order: the
  right-hand side of every `=` (the last link of a chain `a = b = c`), what follows `\\Rightarrow`
  / `\\implies` / `=>`, "is 5"-style statements, and boxed values. Values without a digit or a
  LaTeX command ("= the total") are not results. Duplicates (by equivalence) are dropped, and so
  are values the problem statement itself already states, because restating them is no progress.
  At most `max_checkpoints - 1` intermediate results are kept, spread evenly over the solution,
  and the final answer always comes last. A checkpoint's *prerequisites* are the earlier
  checkpoints among the operands of the reference's computation of it (`9 * 2 = 18` after
  `16 - 3 - 4 = 9`: 18 needs 9).
* **What a trace establishes** (`read_statements`). Only values the trace writes as results are
  compared, never every number in the text: every link after an `=`, arrows, "is 7"-style
  statements (a value followed by `=` or an operator is an operand there, not a result), and
  declared answers (boxes, GSM8K's `#### N`, "the answer is N", "Answer: N"). A `$` right before
  a number is a currency sign. Where a chain's computation is plain arithmetic that can be
  evaluated exactly (numbers, + - * / ^, parentheses, `\\frac`, `\\cdot`, `\\times`, `x`
  between numbers, `%`), every later link must agree with it, else that link and the rest of
  the chain establish nothing: `9 * 2 = $25` establishes neither 25 nor 18, and the left-hand
  side of an `=` is never a result. Agreement is exact, within one unit of a decimal result's
  last digit (`10 / 3 = 3.33`, rounded or cut), or within 1 when an integer results from a
  fraction (whole boxes); modulo m when the problem says "modulo m" (the synthetic task); and
  not checked on a line that works modulo something else. A left-hand side that is only part of
  a larger expression (`x - 3 + 5`, `f(3)`, `half of 10 + 4`) is not checked. Outside `segment`
  views, the operands of a computation the text gets right count as stated (`84 / 12 = 7` uses
  the 12 eggs of a dozen, and `11/18 * 162` the fraction 11/18); a wrong computation lends its
  operands nothing. A name assigned more than two different values (`x = 1, x = 2, x = 3, ...`)
  lists candidates, and none of its values counts. "Score = 5" and "the grade is 5" (a bare value for a score, grade, rating
  or reward, without a computation) are addressed to a judge and are not results. `[asy]`
  drawing code states nothing.
* **Equivalence.** Normalised strings first (spaces, `$`, `\\left`, `\\dfrac`, units in `\\text`,
  thousands separators); then exact rational arithmetic for numbers, fractions and decimals; then,
  only for short symbolic values that use the same symbols and functions, a numeric fingerprint:
  the value parsed once by math-verify into sympy and evaluated (at fixed irrational probe points
  for free symbols). So `\\sqrt{8}` matches `2\\sqrt{2}`, but `\\sqrt{4}` does not match `2` and
  `3+4` does not match `7`: a trace is expected to state its results simplified. That is one parse per
  value instead of one sympy equivalence check per (value, checkpoint) pair, which was far too
  slow on MATH-style solutions. math-verify's own timeout uses `signal.alarm`, which works only in
  the main thread, and the judge runs in a worker thread, so its parser is called with the timeout
  disabled on purpose; the length cap (`arithmetic.SYMBOLIC_MAX_CHARS`) bounds the work instead. Everything
  is memoised.
* **Matching** (`JudgeConfig.reference_matching`). `any`: a checkpoint is reached where the trace
  establishes an equivalent value after the first statement of each of its prerequisites that the
  trace states at all (a prerequisite it never states does not block: another route may skip it).
  `chain`: checkpoints are reached in order from the first (`chain_reached`), for references whose
  every result builds on the ones before, where a value stated out of turn is a coincidence rather
  than progress. A declared answer can reach only the final-answer checkpoint.
* **The final answer.** A text that declares an answer is judged by its last declaration: when
  that differs from the reference's final answer, the final checkpoint is missing whatever else
  the text states, and the score is capped at 3 (`WRONG_FINAL_CAP`). A text that declares more
  distinct answers than the reference does (candidates in several boxes, counted over the
  context too in the step view) is hedging: it is treated as a wrong final answer. In outcome
  mode a text that declares nothing is judged by the last value it states, because a complete
  solution ends with its result: a last value the reference never states, or one its own
  computation contradicts, is a wrong final answer; one on the reference's path is unfinished
  work, scored by its progress.
* **Budget.** A solution needs about as many results as the reference states. A text may state
  `value_budget(n) = max(2n, n + 4)` distinct values, n being the number the reference states;
  numbers the problem gives and unevaluated arithmetic are not counted. Each value beyond the
  budget cancels one reached checkpoint, intermediate ones first from the last, the final answer
  last and only when no declared answer reached it; so number lists, enumerated ranges and lists
  of candidate values earn nothing through their length, while a committed right answer still
  counts.
* **Bare answers.** In outcome mode and the prefix view, a text with no `=` and fewer than
  `BARE_ANSWER_WORDS` (10) words outside its boxes is a bare answer (`exprl.rewards.monitors.shows_no_work`:
  the training monitors count bare answers by the same rule), capped at 4 (`BARE_ANSWER_CAP`).
  The cap matters where the reference states no intermediate result; otherwise a bare answer
  scores lower anyway, through the checkpoints it misses.
* **Score.** With n checkpoints and r reached: r = 0 -> 1, r = n -> 5, otherwise 2, 3 or 4 as r/n
  falls in (0, 1/3], (1/3, 2/3] or (2/3, 1); then the caps above.
* **Process views.** `prefix`: the text judged is `context + step` (the work so far), so the score is
  the progress made up to and including the step and s_t - s_{t-1} is what the step added.
  `segment`: only what the step itself establishes counts. `step`: the checkpoints reached after
  the step beyond those its earlier steps had reached, out of those still missing: 5 when it
  reaches all of them, 1 when it adds none (a step after a finished solution adds nothing, and a
  step whose values push the work over budget adds nothing); its own wrong or hedged answer caps
  it at 3.
* **No reference.** With `reference=None` the only checkpoint is `request.answer` when it is known;
  without either the result is UNPARSEABLE with error "no reference" (never a made-up score).
* **Cached rubric.** `request.rubric`, when given, replaces extraction; its last item is the final
  answer (the order `extract_checkpoints` and `exprl rubrics build` produce). Prerequisites are
  then unknown, and the budget counts the rubric's items (or the reference's results, if larger).
"""

REFERENCE_JUDGE_VERSION = "ref-v3"
"""Part of the judge's name, so of every cache key: change it whenever a rule above changes."""
