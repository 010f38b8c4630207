"""Answer extraction never cuts inside a program's string literals or comments.

A line that looks like a fence (```) or like prose ("Add more test cases.", "Note: ...", "Here is the code:") ends the
code only where it starts outside the program's strings and comments, bare or inside a fenced chat answer.
"""

from __future__ import annotations

import json

import pytest

from common.extraction import extract_answer
from conftest import load_script, read_json

FENCE = "```"
# (id, language of the row, program): each program is the exact answer expected back, and holds fence-like and
# prose-like lines at the start of a line inside a string literal or a comment.
PROGRAMS = [
    ("py-triple-double", "python",  # HumanEval/64
     'FIX = """\nAdd more test cases.\n"""\n\ndef vowels_count(s):\n    return sum(c in "aeiou" for c in s)'),
    ("py-triple-single-prefixed", "python",
     f"def usage():\n    return rb'''\n{FENCE}\nHere is the code:\nNote: this is fine\n'''"),
    ("py-fstring-triple", "python",
     f'def report(name):\n    text = Rf"""\nNote: this is fine\n{FENCE}\n{{name}}\n"""\n    return text'),
    ("py-escaped-quotes-in-docstring", "python",
     'def g():\n    """Quotes: \\"""\nAdd more test cases.\n    """\n    return 1'),
    ("py-raw-escaped-quote", "python",
     "PATTERN = r'\\''\nTEXT = r'''\\'''\nHere is the code:\n'''\n\ndef h():\n    return PATTERN"),
    ("py-backslash-continued-string", "python",
     "MSG = 'one \\\nNote: still the same string'\n\ndef m():\n    return MSG"),
    ("py-comment-with-quotes", "python",
     'def c():\n    # a """ or \'\'\' in a comment opens nothing\n    return 3'),
    ("py-docstring-with-fenced-example", "python",
     f'def f():\n    """Example:\n\n{FENCE}python\nf()\n{FENCE}\nThis returns one.\n    """\n    return 1'),
    ("java-text-block", "java",
     f'public class Banner {{\n    static final String TEXT = """\n{FENCE}\nHere is the code:\n'
     f'  an escaped \\""" stays\nNote: this is fine\n        """;\n}}'),
    ("java-javadoc-and-block-comment", "java",
     f"/**\nAdd more test cases.\n{FENCE}\n */\npublic int add(int a, int b) {{\n    /* a block\nNote: this is fine\n"
     f"    */\n    return a + b; // a \"\"\" in a line comment\n}}"),
    ("java-escapes-and-chars", "java",
     'public String path(char c) {\n    String p = "C:\\\\dir\\\\"; /* a \\" before\nNote: this is fine\n    */\n'
     "    char q = '\"'; /* after a char literal\nHere is the code:\n    */\n    String s = \"say \\\"/*\\\" here\";\n"
     "    return c == '\\'' ? p + s : \"\\\"\";\n}"),
    ("java-javadoc-apostrophes", "java",
     "/**\n * Here's the point: it's idempotent.\nNote: this is fine\n */\npublic int one() {\n    return 1;\n}"),
    ("cs-verbatim", "java-cs",
     f'public string Help() {{\n    return @"Usage:\nNote: ""quoted"" text is fine\n{FENCE}\n'
     'Here is the code:\n";\n}'),
    ("cs-verbatim-backslash", "java-cs",
     'public string Dir() {\n    var d = @"C:\\dir\\"; /* after a verbatim string\nNote: this is fine\n    */\n'
     "    return d;\n}"),
    ("cs-raw", "java-cs",
     f'public string Raw() {{\n    return """"\n{FENCE}\nHere is the code: """ stays inside\n"""";\n}}'),
    ("cs-raw-one-line-then-comment", "java-cs",
     'public string Quote() {\n    var q = """a "quoted" word"""; /* block\nNote: this is fine\n    */\n'
     "    return q;\n}"),
    ("cs-interpolated-verbatim-hole", "java-cs",
     f'public string Greet(Dictionary<string, string> d) {{\n    return $@"Hello {{d["name"]}} {{{{x}}}}\n'
     f'Note: this is fine\n{FENCE}\n";\n}}'),
    ("cs-verbatim-interpolated-hole", "java-cs",
     'public string Hi(string n) {\n    return @$"Hi {(n == "" ? "you" : n)}\nAdd more test cases.\n";\n}'),
    ("cs-interpolated-regular-then-comment", "java-cs",
     'public string Row(Dictionary<string, string> r) {\n    var s = $"{r["a"]} and {{ {r["b"]}"; /* block\n'
     "Note: this is fine\n    */\n    return s;\n}"),
    ("cs-raw-interpolated", "java-cs",
     f'public string Json(int x) {{\n    return $$"""\n{{"value": {{{{x}}}}, "note": "Note: fine"}}\n{FENCE}\n'
     f'{{{{@""""""}}}} (a hole with a verbatim "" in it)\nNote: fine\n""";\n}}'),
    ("cs-escaped-braces", "java-cs", 'public string B() {\n    return $@"{{" + $"}}{{";\n}'),
    ("cs-comments", "java-cs",
     f"// a \"\"\" in a line comment\n/* Here is the code:\n{FENCE}\n*/\n"
     "public int F() { return '\"' == 'x' ? 1 : 2; }"),
    ("cs-escapes-and-chars", "java-cs",
     'public string Say() {\n    char q = \'"\'; /* after a char literal\nNote: this is fine\n    */\n'
     '    var s = "a \\"/*\\" b" + "C:\\\\";\n    return s + q;\n}'),
    ("cs-hole-with-braces", "java-cs",
     'public string Count() {\n    return $@"Count: {new[] { "a" }[0] + "b"}\nNote: this is fine\n";\n}'),
    ("cs-generation-verbatim", "cs", f'public string V() {{\n    return @"\n{FENCE}\nNote: fine";\n}}'),
]
TAGS = {"python": "python", "java": "java", "java-cs": "csharp", "cs": "csharp"}
WRAPS = {
    "bare": lambda code, tag: code,
    "trailing-prose": lambda code, tag: code + "\n\nThis works because the literal is kept whole.",
    "chatter-around": lambda code, tag: ("Here's the solution (it's short):\n" + code
                                         + "\nThis works because it's kept."),
    "fenced-chat": lambda code, tag: (f"Here is the solution:\n{FENCE}{tag}\n{code}\n{FENCE}\n"
                                      "This works because the literal is kept whole."),
}


def _task(language):
    return "translation" if "-" in language else "generation"


@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("language,program", [p[1:] for p in PROGRAMS], ids=[p[0] for p in PROGRAMS])
def test_boundaries_inside_literals_and_comments_are_not_boundaries(language, program, wrap):
    text = WRAPS[wrap](program, TAGS[language])
    answer = extract_answer(_task(language), text, language)
    assert answer == program
    assert extract_answer(_task(language), answer, language) == answer


def test_programs_in_the_cases_are_valid_python():
    for _, language, program in PROGRAMS:
        if language == "python":
            compile(program, "<case>", "exec")


@pytest.mark.parametrize("task,text,language,expected", [
    # the chatter before the code is never lexed: its quotes and comment openers open nothing
    ("generation", 'Here\'s how (it\'s short, """ style):\ndef f():\n    return 1\nThis returns one.', "python",
     "def f():\n    return 1"),
    ("translation", 'Sure! With /* and @" in mind:\npublic int F() { return 1; }\nThis returns one.', "java-cs",
     "public int F() { return 1; }"),
    # a one-quote string ends with its line, even unclosed: the prose after the code is still cut
    ("generation", "def f():\n    return 'oops\n\nThis works because it returns.", "python",
     "def f():\n    return 'oops"),
    ("generation", 'public char f() {\n    return \'"\n}\nThis works because it returns.', "java",
     "public char f() {\n    return '\"\n}"),
    ("translation", 'public string F() {\n    return "oops\n}\nThis works because it returns.', "java-cs",
     'public string F() {\n    return "oops\n}'),
    # the real fence after a docstring's fenced example closes unfenced code; a body continuation stops there too
    ("generation", f'def f():\n    """\n{FENCE}\n    """\n    return 1\n{FENCE}\nThis returns one.', "python",
     'def f():\n    """\n```\n    """\n    return 1'),
    ("generation", f"    return x\n{FENCE}\nThis returns x.", "python", "    return x"),
    ("generation", f"def f(x):\n    return x\n{FENCE}", "python", "def f(x):\n    return x"),
    # a fenced answer's unclosed string runs to the end; its closing fence is then inside the string
    ("generation", f'Here:\n{FENCE}python\nX = """\n{FENCE}\nMore text.', "python", 'X = """\n```\nMore text.'),
    # Windows line ends
    ("generation", 'Here:\r\n```python\r\nFIX = """\r\nAdd more.\r\n"""\r\n```\r\nDone.', "python",
     'FIX = """\nAdd more.\n"""'),    # a markdown heading (or a lone comment) before the fence is chatter, not code closed by the fence
    ("generation", f"## Solution\n{FENCE}python\ndef f():\n    return 1\n{FENCE}\n### Explanation\nIt returns one.",
     "python", "def f():\n    return 1"),
    ("translation", f"// Here it is\n{FENCE}csharp\nint F() {{ return 1; }}\n{FENCE}", "java-cs", "int F() { return 1; }"),
    ("generation", f"# helper\nimport math\n{FENCE}\nDone.", "python", "# helper\nimport math"),
])
def test_extraction_edge_cases(task, text, language, expected):
    answer = extract_answer(task, text, language)
    assert answer == expected
    assert extract_answer(task, answer, language) == answer


def _humaneval_pass_at_1(tmp_path, wrap):
    from common.benchmarks import load_humaneval

    preds, out = tmp_path / "preds.jsonl", tmp_path / "eval"
    with open(preds, "w") as f:
        for p in load_humaneval():
            f.write(json.dumps({"id": p["task_id"], "prediction": wrap(p["prompt"] + p["canonical_solution"])}) + "\n")
    assert load_script("generation", "evaluate").main([
        "--benchmark", "humaneval", "--predictions_file", str(preds), "--output_dir", str(out),
        "--quality", "False"]) == 0
    return read_json(out / "metrics.json")["metrics"]["generation"]["python"]


@pytest.mark.slow
def test_humaneval_canonical_solutions_all_pass(tmp_path):
    metrics = _humaneval_pass_at_1(tmp_path, lambda code: code)
    assert (metrics["executed"], metrics["pass@1"]) == (164, 1.0)


@pytest.mark.slow
def test_humaneval_canonical_solutions_all_pass_in_a_fenced_chat_answer(tmp_path):
    metrics = _humaneval_pass_at_1(tmp_path, lambda code: (
        "Here is the completed function:\n```python\n" + code + "```\nThis implementation follows the docstring."))
    assert (metrics["executed"], metrics["pass@1"]) == (164, 1.0)
