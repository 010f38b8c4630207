"""The programming languages the toolkit knows: one table, read by prompts, metrics, quality and data loading.

| name | display | extension | CodeBLEU | tree-sitter grammar |
|---|---|---|---|---|
| python | Python | py | python | tree_sitter_python |
| java | Java | java | java | tree_sitter_java |
| cs | C# | cs | c_sharp | tree_sitter_c_sharp |

Tasks over code-to-text data run on `SOURCE_LANGUAGES` (the --languages choices); `DIRECTIONS` pair two names
("java-cs"; the --directions choices). A new language is a row here, its grammar package in requirements.txt, its
entry in those tuples where it applies, and, for answer extraction, a lexer in `common.lexers` and a code-start
pattern in `common.extraction`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    name: str  # as in ids, flags and file names: python, java, cs
    display: str  # as the prompts write it
    extension: str  # file extension (lizard picks its reader by it)
    codebleu: str  # the codebleu package's name for it
    grammar: str  # the tree-sitter grammar package


LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (
    Language("python", "Python", "py", "python", "tree_sitter_python"),
    Language("java", "Java", "java", "java", "tree_sitter_java"),
    Language("cs", "C#", "cs", "c_sharp", "tree_sitter_c_sharp"),
)}
# The languages of the code-to-text data (CodeXGLUE code_to_text configs the study used) and its directions.
SOURCE_LANGUAGES = ("java", "python")
DIRECTIONS = ("java-cs", "cs-java")
# Spellings found in data files' `language` fields and names.
ALIASES = {"python": "python", "py": "python", "java": "java", "cs": "cs", "c#": "cs", "csharp": "cs"}


def language(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        raise ValueError(f"unknown language {name!r}; known: {', '.join(LANGUAGES)}") from None


def direction(name: str) -> tuple[Language, Language]:
    """(source, target) of a direction such as "java-cs"."""
    source, target = name.split("-")
    return language(source), language(target)


def grammar(name: str):
    """The tree-sitter grammar module of a language (imported on first use)."""
    return importlib.import_module(language(name).grammar)
