"""Jinja snippets whose output keel's engine must equal, rendered by jinja2 in the environment
transformers uses for chat templates. `python cases.py` prints them as JSON lines
{"name", "template", "context", "expected" | "error"}; tests/jinja/engine_parity.py feeds them to
keel and compares."""
import json
import sys

CTX = {
    "messages": [
        {"role": "system", "content": "  Be brief.\n"},
        {"role": "user", "content": "Héllo, wörld! 你好 🙂"},
        {"role": "assistant", "content": "Hi.", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, None, True]}}}]},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "n": 7, "x": 2.5, "s": "a,b,,c", "empty": "", "none_v": None, "flag": True,
    "d": {"b": 2, "a": 1, "C": 3},
}

CASES = [
    ("text", "hello"),
    ("trailing_newline_dropped", "a\n"),
    ("two_trailing_newlines", "a\n\n"),
    ("crlf", "a\r\nb\r\n{% if true %}\r\nc{% endif %}\r\n"),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter"),
    ("lstrip_blocks", "line\n    {% if true %}x{% endif %}\n  {{ 'v' }}\n"),
    ("lstrip_not_after_text", "ab  {% if true %}x{% endif %}"),
    ("minus", "a   {%- if true -%}   b   {%- endif -%}   c"),
    ("minus_var", "a \n {{- 'b' -}} \n c"),
    ("plus", "  {%+ if true %}x{% endif %}"),
    ("comment", "a{# note #}b\n  {# c #}\nd"),
    ("raw", "{% raw %}{{ not }}{% endraw %}"),
    ("for_loop", "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}"),
    ("loop_vars", "{% for i in range(3) %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}"),
    ("loop_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% endfor %}"),
    ("loop_else", "{% for i in [] %}x{% else %}empty{% endfor %}"),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
    ("loop_cycle", "{% for i in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}"),
    ("unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"),
    ("dict_iter", "{% for k in d %}{{ k }}{% endfor %}"),
    ("scoping", "{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}"),
    ("namespace", "{% set ns = namespace(c=0, found=false) %}{% for m in messages %}{% set ns.c = ns.c + 1 %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.c }}{{ ns.found }}"),
    ("set_block", "{% set b %}[{{ n }}]{% endset %}{{ b }}{{ b | length }}"),
    ("set_block_filter", "{% set b | upper %}abc{% endset %}{{ b }}"),
    ("if_elif", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %}{% endfor %}"),
    ("macro", "{% macro f(a, b='B') %}<{{ a }}{{ b }}{{ varargs }}{{ kwargs }}>{% endmacro %}{{ f(1) }}{{ f(1, 2, 3) }}{{ f(a=5, b=6) }}"),
    ("macro_scope", "{% set g = 'G' %}{% macro f() %}{{ g }}{% endmacro %}{{ f() }}"),
    ("call_block", "{% macro w(x) %}[{{ caller() }}{{ x }}]{% endmacro %}{% call w(1) %}in{% endcall %}"),
    ("call_block_args", "{% macro w() %}[{{ caller(3) }}]{% endmacro %}{% call(v) w() %}v={{ v }}{% endcall %}"),
    ("filter_block", "{% filter upper %}abc{{ n }}{% endfilter %}"),
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 3 - 1 - 1 }} {{ 2 ** 3 ** 2 }}"),
    ("floats", "{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 0.0001 }} {{ 1.0 }} {{ 100.0 / 3 }} {{ x * 2 }} {{ 1e16 }} {{ 123456789012345.6 }}"),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ undefined_thing ~ 2.0 }}"),
    ("strings", "{{ 'it''s' }}{{ \"q\\\"x\" }}{{ 'tab\\tnl\\nu\\u00e9' }}"),
    ("str_methods", "{{ s.split(',') }}{{ '  x y  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a b  c'.split() }}{{ s.replace(',', ';') }}{{ 'abc'.upper() }}{{ 'ABC'.lower() }}{{ 'hello world'.title() }}{{ 'hello'.capitalize() }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'a-b-c'.rsplit('-', 1) }}{{ 'abcabc'.find('c') }}{{ 'abc'.count('b') }}{{ ', '.join(['x', 'y']) }}"),
    ("str_lstrip", "[{{ '\\n\\n  x  \\n'.lstrip() }}][{{ '  x  \\n'.rstrip() }}][{{ 'x\\n'.rstrip('\\n') }}]"),
    ("unicode_len_index", "{{ messages[1].content | length }} {{ messages[1].content[0] }} {{ messages[1].content[-1] }} {{ messages[1].content[1:4] }} {{ messages[1].content[::-1] }}"),
    ("slices", "{{ [1,2,3,4,5][1:] }}{{ [1,2,3,4,5][:-2] }}{{ [1,2,3,4,5][::2] }}{{ [1,2,3,4,5][::-1] }}{{ [1,2,3,4,5][-2:] }}{{ 'abcdef'[2:-1] }}{{ messages[-1].role }}{{ messages[1:] | length }}"),
    ("tests", "{{ n is number }}{{ n is integer }}{{ x is float }}{{ s is string }}{{ d is mapping }}{{ messages is sequence }}{{ s is iterable }}{{ none_v is none }}{{ undefined_thing is defined }}{{ n is odd }}{{ n is even }}{{ 9 is divisibleby 3 }}{{ flag is boolean }}{{ flag is true }}{{ d is not none }}{{ 'a' is in 'cat' }}{{ 1 is eq 1 }}{{ 'abc' is lower }}"),
    ("comparisons", "{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 'a' in 'cat' }}{{ 'z' not in 'cat' }}{{ 'a' in d }}{{ 1 in [1, 2] }}{{ none_v == none }}{{ 1 == 1.0 }}{{ true == 1 }}{{ [1, 2] == [1, 2] }}{{ 'b' > 'a' }}"),
    ("logic", "{{ 0 or 'x' }}{{ 1 and 'y' }}{{ none_v or 'z' }}{{ not empty }}{{ empty or none_v }}{{ 'a' if flag else 'b' }}{{ 'a' if not flag else 'b' }}[{{ 'a' if not flag }}]"),
    ("filters_basic", "{{ 'abc' | length }}{{ [1, 2] | count }}{{ undefined_thing | default('dflt') }}{{ empty | default('e2', true) }}{{ [1, 2, 3] | join('-') }}{{ 'abc' | list }}{{ [3, 1] | first }}{{ [3, 1] | last }}{{ '  t ' | trim }}|{{ 'a.b' | replace('.', '!') }}{{ 5 | string }}{{ '42' | int }}{{ 'x' | int }}{{ 3.9 | int }}{{ '2.5' | float }}{{ -3 | abs }}{{ 2.567 | round(2) }}{{ 'hi' | safe }}{{ 'hi there' | upper }}{{ 'HI' | lower }}{{ 'hi there' | capitalize }}{{ 'hi there-you' | title }}"),
    ("filters_seq", "{{ [3, 1, 2] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ ['b', 'A', 'c'] | sort }}{{ [1, 2, 1, 3] | unique | list }}{{ [1, 2, 3] | reverse | list }}{{ [1, 2, 3] | sum }}{{ [1, 5, 2] | max }}{{ [1, 5, 2] | min }}{{ d | dictsort }}{{ d | items | list }}"),
    ("filters_select", "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}{{ [0, 1, 2, '', 'a'] | select | list }}{{ [1, 2, 3, 4] | select('odd') | list }}{{ [1, 2, 3] | reject('even') | list }}{{ ['a', 'b'] | map('upper') | list }}{{ messages | map(attribute='missing', default='m') | list }}{{ messages | selectattr('tool_calls') | list | length }}{{ messages | selectattr('tool_calls', 'defined') | list | length }}"),
    ("tojson", "{{ tools | tojson }}|{{ messages[2].tool_calls[0].function.arguments | tojson }}|{{ 'é\"\\n' | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ {'k': [1, {'z': none}]} | tojson(separators=(',', ':')) }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ 1.0 | tojson }}{{ none_v | tojson }}{{ [] | tojson }}{{ {} | tojson }}"),
    ("repr", "{{ messages[2].tool_calls[0].function.arguments }}{{ [1, 'a', none, true, 2.0] }}{{ (1,) }}{{ (1, 2) }}{{ \"it's\" | list }}{{ {'a': \"b'c\"} }}"),
    ("dict_methods", "{{ d.get('a') }}{{ d.get('zz') }}{{ d.get('zz', 9) }}{{ d.keys() | list }}{{ d.values() | list }}{{ messages[0].get('content') }}{{ d['a'] }}{{ d.a }}{{ d.missing is defined }}{{ messages[0]['missing'] is defined }}"),
    ("dict_literal", "{% set z = {'a': 1, 'b': [2, 3]} %}{{ z.b[1] }}{{ z | length }}{{ dict(a=1, b=2) }}"),
    ("in_dict_attr", "{% if 'tool_calls' in messages[2] %}yes{% endif %}{% if messages[2].tool_calls is defined %}def{% endif %}{% if messages[0].tool_calls %}no{% endif %}"),
    ("list_index_out", "[{{ messages[10] }}][{{ messages[10] is defined }}][{{ ''[0] is defined }}]"),
    ("indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, first=true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}"),
    ("string_mul", "{{ '=' * 3 }}{{ [0] * 2 }}{{ 'ab' + 'cd' }}{{ [1] + [2] }}{{ '%s-%s' | format(1, 'x') }}"),
    ("strftime", "{{ strftime_now('%Y') | length }}"),
    ("undefined_print", "[{{ nothing }}][{{ nothing | default('') }}][{{ nothing | length }}][{% for a in nothing %}x{% endfor %}]"),
    ("none_print", "{{ none_v }} {{ none }} {{ True }} {{ false }}"),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}"),
    ("whitespace_mix", "{%- for m in messages -%}\n    {{- m.role }}\n{%- endfor %}\n\n  {{ 'end' }}  \n"),
    ("nested_loops", "{% for m in messages %}{% for c in m.role %}{{ loop.index }}{% endfor %}|{{ loop.index }}{% endfor %}"),
    ("elif_chain_ws", "{% if false %}\n  a\n{% elif true %}\n  b\n{% else %}\n  c\n{% endif %}\n"),
    # errors: transformers raises, so keel must too
    ("err_raise", "{{ raise_exception('bad role') }}", True),
    ("err_append", "{% set l = [] %}{{ l.append(1) }}", True),
    ("err_pop", "{{ d.pop('a') }}", True),
    ("err_undefined_attr", "{{ nothing.attr }}", True),
    ("err_add_types", "{{ 1 + 'a' }}", True),
    ("err_unknown_filter", "{{ 1 | nosuchfilter }}", True),
    ("err_syntax", "{% if %}", True),
    ("err_unclosed", "{% for m in messages %}x", True),
    ("err_include", "{% include 'x.jinja' %}", True),
    ("err_div0", "{{ 1 // 0 }}", True),
    ("err_undefined_add", "{{ nothing + 1 }}", True),
    ("err_tojson_undefined", "{{ nothing | tojson }}", True),
    ("err_ns_underscore", "{% set ns = namespace(_x=1) %}", True),
]


def env():
    from transformers.utils.chat_template_utils import _compile_jinja_template
    return _compile_jinja_template


def main():
    compile_ = env()
    for case in CASES:
        name, tmpl = case[0], case[1]
        want_error = len(case) > 2
        row = {"name": name, "template": tmpl, "context": CTX}
        try:
            t = compile_(tmpl)
            row["expected"] = t.render(**CTX)
        except Exception as e:  # noqa: BLE001 - any jinja2 error is an expected error
            row["error"] = f"{type(e).__name__}: {e}"
        if want_error != ("error" in row):
            print(f"case {name}: error expected={want_error} but jinja2 gave {row}", file=sys.stderr)
            sys.exit(1)
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
