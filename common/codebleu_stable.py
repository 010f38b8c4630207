"""CodeBLEU (codebleu 0.7.0) with a data-flow score that does not depend on PYTHONHASHSEED.

Why the library's value moves with the hash seed
------------------------------------------------
The data-flow component builds, for each variable occurrence, an item (name, position, relation, parent names,
parent positions). When the same item is produced more than once it is merged, de-duplicating the parent names with
`list(set(old + new))`:

* `codebleu/parser/DFG.py`, `DFG_java` / `DFG_csharp` / `DFG_python`, the for, enhanced-for/foreach and while
  branches (a loop body is walked twice to catch loop-carried flows): `dic[...][0] = list(set(dic[...][0] + x[3]))`;
* `codebleu/dataflow_match.py`, `get_data_flow` ("merge nodes"): `list(set(dic[d[1]][3] + d[3]))`.

Iterating a set of strings follows the strings' hashes, which Python salts per process (PYTHONHASHSEED), so the
order of a merged parent list is random. The order is not harmless: `normalize_dataflow` renames variables `var_0,
var_1, ...` in order of first appearance, parent lists included, and `corpus_dataflow_match` greedily matches the
reference's normalized items against the candidate's with `==` on `(var, relation, [parents])`, a list compare. A
merged list such as `x computedFrom [a, b]` (a statement in a loop body, walked twice) can therefore match or not,
and shift the numbering of every later item, depending on the seed. The n-gram, weighted n-gram and syntax
components contain no set and are unaffected.

The intended value, and how it is computed here
-----------------------------------------------
The set is there to de-duplicate: an item that is not merged keeps its parents in the order the code lists them
(e.g. `x = b + a` gives `[b, a]`), and merging the same statement seen twice in a loop is meant to give the same
list back. The intended value is therefore the library's algorithm with an order-preserving de-duplication (first
occurrence wins), which is what this module computes. It equals the library's own value on every item whose parent
lists were never merged; for a merged list it picks one of the orders the library's set can produce (the order
of first occurrence, i.e. the code's); and it keeps the metric's renaming invariance (a consistently renamed copy
of the reference gets data-flow match 1.0, which the raw library misses under most seeds). Java and C# references
scored against themselves are unchanged.

Nothing is patched process-wide: the library's own modules `codebleu.parser.DFG`, `codebleu.dataflow_match` and
`codebleu.codebleu` are executed a second time, unmodified, into private module objects whose global namespace
binds the name `set` to `_FirstSeenSet` (an insertion-ordered set: construction, `add`, `in`, iteration, `len`; any
other set operation would raise). The private modules are wired to each other and used only by `calc_codebleu`
below; `import codebleu` elsewhere keeps the library's behaviour.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Iterable, Iterator
from typing import Any

import codebleu
import codebleu.codebleu
import codebleu.dataflow_match
import codebleu.parser.DFG

class _FirstSeenSet:
    """The part of `set` that codebleu's data-flow code uses, iterating in insertion order instead of hash order."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = dict.fromkeys(items)

    def add(self, item: Any) -> None:
        self._items[item] = None

    def __contains__(self, item: Any) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _private_copy(module: types.ModuleType, **names: Any) -> types.ModuleType:
    """Execute `module`'s source again into a new module object (not in sys.modules) whose globals start with `names`."""
    spec = importlib.util.find_spec(module.__name__)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot locate the source of {module.__name__}")
    copy = importlib.util.module_from_spec(spec)
    vars(copy).update(names)
    spec.loader.exec_module(copy)
    return copy


def _build() -> types.ModuleType:
    dfg = _private_copy(codebleu.parser.DFG, set=_FirstSeenSet)
    dataflow = _private_copy(codebleu.dataflow_match, set=_FirstSeenSet)
    # dataflow_match imported the library's DFG functions by name; point it at the private ones (they recurse
    # through their own module's globals, so the whole walk uses _FirstSeenSet).
    dataflow.dfg_function = {lang: getattr(dfg, fn.__name__) for lang, fn in dataflow.dfg_function.items()}
    top = _private_copy(codebleu.codebleu)
    top.dataflow_match = dataflow  # calc_codebleu looks the module up when it runs
    return top


_STABLE = _build()


def calc_codebleu(references: list[str], predictions: list[str], lang: str) -> dict[str, float]:
    """codebleu.calc_codebleu(references, predictions, lang) with order-preserving de-duplication in the data flow.

    Same arguments (one reference string per prediction; lang as codebleu's: "java", "c_sharp", "python", ...),
    same default weights and tokenizer, same keys: codebleu, ngram_match_score, weighted_ngram_match_score,
    syntax_match_score, dataflow_match_score (0-1, as the library returns them). The value does not depend on
    PYTHONHASHSEED; see the module docstring for why it is the library's intended value.
    """
    return _STABLE.calc_codebleu(references, predictions, lang)
