#pragma once
// The evaluator of grpo::ChatTemplate's Jinja engine: runs a parsed template over variables with Jinja2's
// semantics (a for loop's body is a fresh scope each iteration, so a {% set %} inside it does not leak out, hence
// namespace(); if blocks share their scope; macros see the template's top-level names) and the globals transformers
// adds (raise_exception, strftime_now, namespace, dict) beside Jinja2's range. Internal.

#include <cmath>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/jinja_builtins.hpp"
#include "grpo/tokenizers/detail/jinja_parser.hpp"
#include "grpo/tokenizers/detail/jinja_value.hpp"

namespace grpo::detail::jinja {

class Interpreter {
 public:
  /// `now`: the local time strftime_now() formats (unset: the current time).
  explicit Interpreter(std::optional<std::tm> now) : now_(now) {}

  /// Renders `program` with `variables` (they shadow the globals). Errors carry the template line.
  std::string render(const StmtList& program, std::vector<std::pair<std::string, Value>> variables) {
    Scope root{{}, nullptr};
    add_globals(root);
    for (auto& entry : variables) root.set(entry.first, std::move(entry.second));
    root_ = &root;
    // Namespaces are the one mutable value, so the only way to a reference cycle (ns.self = ns, ns.items = [ns]);
    // emptying them when the render ends frees what the cycles hold.
    struct ClearNamespaces {
      std::vector<std::weak_ptr<Namespace>>& created;
      ~ClearNamespaces() {
        for (const auto& weak : created) {
          if (const auto ns = weak.lock()) ns->attributes.entries.clear();
        }
      }
    } clear_namespaces{namespaces_};
    std::string out;
    try {
      exec(program, root, out);
    } catch (const TemplateError& e) {
      if (e.line == 0) throw TemplateError(e.what(), line_, e.raised);
      throw;
    }
    return out;
  }

 private:
  struct Scope {
    std::vector<std::pair<std::string, Value>> vars;
    Scope* parent;

    const Value* find(const std::string& name) const {
      for (const Scope* s = this; s; s = s->parent) {
        for (const auto& entry : s->vars) {
          if (entry.first == name) return &entry.second;
        }
      }
      return nullptr;
    }
    void set(const std::string& name, Value value) {
      for (auto& entry : vars) {
        if (entry.first == name) {
          entry.second = std::move(value);
          return;
        }
      }
      vars.emplace_back(name, std::move(value));
    }
  };

  enum class Flow { normal, break_loop, continue_loop };

  std::optional<std::tm> now_;
  Scope* root_ = nullptr;
  int line_ = 0;
  int macro_depth_ = 0;
  std::uint64_t steps_ = 0;
  std::vector<std::weak_ptr<Namespace>> namespaces_;  // every namespace() of this render

  [[noreturn]] void fail(const std::string& message) const { throw TemplateError(message, line_); }

  // Counts `n` steps against max_render_steps: one per loop iteration and macro call, and one per 64 items of a
  // list or dict that a filter, test, comparison or method call is given (messages|length in a loop over the
  // messages costs nothing; sorting a million items a thousand times is bounded).
  void step(std::uint64_t n = 1) {
    steps_ += n;
    if (steps_ > max_render_steps) {
      fail("the template took more than " + std::to_string(max_render_steps) +
           " steps (loop iterations, macro calls, list items worked through): a runaway loop?");
    }
  }
  static std::uint64_t items_of(const Value& v) {
    return (v.is_sequence() ? v.items->size() : v.kind == Kind::dict ? v.dict->entries.size() : 0) / 64;
  }

  // --- globals -------------------------------------------------------------------------------------------------

  void add_globals(Scope& root) {
    root.set("raise_exception", Value::function("raise_exception", [this](CallArgs& args) -> Value {
               const Value* message = args.get(0, "message");
               throw TemplateError(message ? to_str(*message) : "", line_, true);
             }));
    root.set("strftime_now", Value::function("strftime_now", [this](CallArgs& args) -> Value {
               const Value* format = args.get(0, "format");
               if (!format || !format->is_string()) fail("strftime_now() needs a format string");
               return Value::string(strftime_now(format->s));
             }));
    root.set("namespace", Value::function("namespace", [this](CallArgs& args) -> Value {
               Value v;
               v.kind = Kind::ns;
               v.ns = std::make_shared<Namespace>();
               namespaces_.push_back(v.ns);
               for (const Value& initial : args.positional) {
                 if (initial.kind != Kind::dict) fail("namespace() takes a dict and keyword arguments");
                 for (const auto& entry : initial.dict->entries)
                   set_namespace_attribute(*v.ns, entry.first, entry.second);
               }
               for (const auto& entry : args.keyword) set_namespace_attribute(*v.ns, entry.first, entry.second);
               return v;
             }));
    root.set("dict", Value::function("dict", [this](CallArgs& args) -> Value {
               Dict d;
               for (const Value& initial : args.positional) {
                 if (initial.kind != Kind::dict) fail("dict() takes a dict and keyword arguments");
                 for (const auto& entry : initial.dict->entries) d.set(entry.first, entry.second);
               }
               for (const auto& entry : args.keyword) d.set(entry.first, entry.second);
               return Value::mapping(std::move(d));
             }));
    root.set("range", Value::function("range", [this](CallArgs& args) -> Value {
               if (!args.keyword.empty() || args.positional.empty() || args.positional.size() > 3) {
                 fail("range() takes 1 to 3 integer arguments");
               }
               std::int64_t start = 0, stop = 0, step = 1;
               auto integer = [&](std::size_t k) {
                 const Value& v = args.positional[k];
                 if (v.kind != Kind::integer && v.kind != Kind::boolean) {
                   fail(std::string("'") + type_name(v) + "' object cannot be interpreted as an integer");
                 }
                 return v.kind == Kind::boolean ? std::int64_t{v.b} : v.i;
               };
               if (args.positional.size() == 1) {
                 stop = integer(0);
               } else {
                 start = integer(0);
                 stop = integer(1);
                 if (args.positional.size() == 3) step = integer(2);
               }
               if (step == 0) fail("range() arg 3 must not be zero");
               ValueList items;
               for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
                 if (items.size() >= 100000) fail("range() too big (Jinja's sandbox allows 100000 items)");
                 items.push_back(Value::integer(k));
               }
               return Value::list(std::move(items));
             }));
  }

  void set_namespace_attribute(Namespace& ns, const std::string& name, const Value& value) {
    if (!name.empty() && name[0] == '_') {
      fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + name + "'");
    }
    ns.attributes.set(name, value);
  }

  std::string strftime_now(const std::string& format) const {
    std::tm local{};
    if (now_) {
      local = *now_;
    } else {
      const std::time_t t = std::time(nullptr);
#if defined(_WIN32)
      localtime_s(&local, &t);
#else
      localtime_r(&t, &local);
#endif
    }
    if (format.empty()) return "";
    std::vector<char> buffer(256 + format.size() * 8);
    const std::size_t written = std::strftime(buffer.data(), buffer.size(), format.c_str(), &local);
    return std::string(buffer.data(), written);
  }

  // --- statements ------------------------------------------------------------------------------------------------

  Flow exec(const StmtList& body, Scope& scope, std::string& out) {
    for (const auto& statement : body) {
      const Stmt& s = *statement;
      line_ = s.line;
      switch (s.kind) {
        case StmtKind::text:
          out += s.text;
          break;
        case StmtKind::print:
          out += to_str(eval(*s.exprs[0], scope));
          break;
        case StmtKind::if_: {
          std::size_t k = 0;
          for (; k < s.exprs.size(); ++k) {
            if (truthy(eval(*s.exprs[k], scope))) break;
          }
          const Flow flow = exec(s.bodies[k], scope, out);  // k == conditions: the else body
          if (flow != Flow::normal) return flow;
          break;
        }
        case StmtKind::for_: {
          const Flow flow = exec_for(s, scope, out);
          if (flow != Flow::normal) return flow;
          break;
        }
        case StmtKind::set: {
          Value value = eval(*s.exprs[0], scope);
          line_ = s.line;
          if (!s.text.empty()) {
            const Value* target = scope.find(s.names[0]);
            if (!target || target->kind != Kind::ns) {
              fail("cannot assign attribute '" + s.text + "' on '" + s.names[0] + "': not a namespace object");
            }
            set_namespace_attribute(*target->ns, s.text, value);
          } else {
            assign(scope, s.names, std::move(value));
          }
          break;
        }
        case StmtKind::set_block: {
          std::string text;
          Scope inner{{}, &scope};
          exec(s.bodies[0], inner, text);
          scope.set(s.names[0], Value::string(std::move(text)));
          break;
        }
        case StmtKind::macro:
          scope.set(s.text, make_macro(s));
          break;
        case StmtKind::break_:
          return Flow::break_loop;
        case StmtKind::continue_:
          return Flow::continue_loop;
        case StmtKind::filter_block: {
          Scope inner{{}, &scope};
          std::string text;
          const Flow flow = exec(s.bodies[0], inner, text);
          inner.set(filter_body_name, Value::string(std::move(text)));
          out += to_str(eval(*s.exprs[0], inner));
          if (flow != Flow::normal) return flow;
          break;
        }
        case StmtKind::block: {
          const Flow flow = exec(s.bodies[0], scope, out);
          if (flow != Flow::normal) return flow;
          break;
        }
      }
      check_string_size(out.size());
    }
    return Flow::normal;
  }

  void assign(Scope& scope, const std::vector<std::string>& names, Value value) {
    if (names.size() == 1) {
      scope.set(names[0], std::move(value));
      return;
    }
    if (!value.is_sequence()) fail(std::string("cannot unpack a non-sequence ") + type_name(value));
    if (value.items->size() > names.size()) {
      fail("too many values to unpack (expected " + std::to_string(names.size()) + ")");
    }
    if (value.items->size() < names.size()) {
      fail("not enough values to unpack (expected " + std::to_string(names.size()) + ", got " +
           std::to_string(value.items->size()) + ")");
    }
    for (std::size_t k = 0; k < names.size(); ++k) scope.set(names[k], (*value.items)[k]);
  }

  Flow exec_for(const Stmt& s, Scope& scope, std::string& out) {
    ValueList items = iterate(eval(*s.exprs[0], scope));
    if (s.exprs[1]) {
      ValueList kept;
      for (auto& item : items) {
        step();
        Scope probe{{}, &scope};
        assign(probe, s.names, item);
        if (truthy(eval(*s.exprs[1], probe))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Scope inner{{}, &scope};
      return exec(s.bodies[1], inner, out);
    }
    const auto n = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < n; ++k) {
      step();
      Scope inner{{}, &scope};
      assign(inner, s.names, items[static_cast<std::size_t>(k)]);
      Dict loop;
      loop.entries.reserve(12);
      loop.entries.emplace_back("index", Value::integer(k + 1));
      loop.entries.emplace_back("index0", Value::integer(k));
      loop.entries.emplace_back("revindex", Value::integer(n - k));
      loop.entries.emplace_back("revindex0", Value::integer(n - k - 1));
      loop.entries.emplace_back("first", Value::boolean(k == 0));
      loop.entries.emplace_back("last", Value::boolean(k == n - 1));
      loop.entries.emplace_back("length", Value::integer(n));
      loop.entries.emplace_back("depth", Value::integer(1));
      loop.entries.emplace_back("depth0", Value::integer(0));
      loop.entries.emplace_back(
          "previtem", k > 0 ? items[static_cast<std::size_t>(k - 1)] : Value::undefined("there is no previous item"));
      loop.entries.emplace_back(
          "nextitem", k + 1 < n ? items[static_cast<std::size_t>(k + 1)] : Value::undefined("there is no next item"));
      loop.entries.emplace_back("cycle", Value::function("cycle", [k](CallArgs& args) -> Value {
                                  if (args.positional.empty()) throw TemplateError("no items for cycling given");
                                  return args.positional[static_cast<std::size_t>(k) % args.positional.size()];
                                }));
      inner.set("loop", Value::mapping(std::move(loop)));
      const Flow flow = exec(s.bodies[0], inner, out);
      if (flow == Flow::break_loop) break;
    }
    return Flow::normal;
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::function(s.text, [this, macro](CallArgs& args) -> Value {
      const std::size_t count = macro->names.size();
      if (args.positional.size() > count) {
        fail("macro '" + macro->text + "' takes not more than " + std::to_string(count) + " argument(s)");
      }
      if (macro_depth_ >= 100) fail("macro '" + macro->text + "' recursed more than 100 levels");
      step();
      Scope inner{{}, root_};
      for (std::size_t k = 0; k < count; ++k) {
        const Value* given = k < args.positional.size() ? &args.positional[k] : nullptr;
        for (const auto& entry : args.keyword) {
          if (entry.first == macro->names[k]) {
            if (given) fail("macro '" + macro->text + "' got multiple values for argument '" + entry.first + "'");
            given = &entry.second;
          }
        }
        if (given) {
          inner.set(macro->names[k], *given);
        } else if (macro->exprs[k]) {
          inner.set(macro->names[k], eval(*macro->exprs[k], inner));
        } else {
          inner.set(macro->names[k], Value::undefined("parameter '" + macro->names[k] + "' was not provided"));
        }
      }
      for (const auto& entry : args.keyword) {
        if (std::find(macro->names.begin(), macro->names.end(), entry.first) == macro->names.end()) {
          fail("macro '" + macro->text + "' takes no keyword argument '" + entry.first + "'");
        }
      }
      const int saved_line = line_;
      ++macro_depth_;
      std::string text;
      exec(macro->bodies[0], inner, text);
      --macro_depth_;
      line_ = saved_line;
      return Value::string(std::move(text));
    });
  }

  // --- expressions -----------------------------------------------------------------------------------------------

  CallArgs eval_args(const Expr& e, Scope& scope, std::size_t first) {
    CallArgs args;
    args.positional.reserve(e.args.size() - first);
    for (std::size_t k = first; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k], scope));
    for (const auto& entry : e.kwargs) args.keyword.emplace_back(entry.first, eval(*entry.second, scope));
    return args;
  }

  std::optional<std::int64_t> slice_bound(const ExprPtr& e, Scope& scope) {
    if (!e) return std::nullopt;
    const Value v = eval(*e, scope);
    if (v.kind == Kind::none) return std::nullopt;
    if (v.kind == Kind::integer) return v.i;
    if (v.kind == Kind::boolean) return std::int64_t{v.b};
    if (v.is_undefined()) fail(v.s);
    fail("slice indices must be integers or None");
  }

  Value eval(const Expr& e, Scope& scope) {
    line_ = e.line;
    switch (e.kind) {
      case ExprKind::literal:
        return e.value;
      case ExprKind::name: {
        const Value* found = scope.find(e.name);
        return found ? *found : Value::undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::list:
      case ExprKind::tuple: {
        ValueList items;
        items.reserve(e.args.size());
        for (const auto& item : e.args) items.push_back(eval(*item, scope));
        return Value::list(std::move(items), e.kind == ExprKind::list ? Kind::list : Kind::tuple);
      }
      case ExprKind::dict: {
        Dict d;
        for (std::size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k], scope);
          if (!key.is_string()) fail("unsupported construct: a dict literal key that is not a string");
          d.set(key.s, eval(*e.args[k + 1], scope));
        }
        return Value::mapping(std::move(d));
      }
      case ExprKind::getattr:
        return get_attribute(eval(*e.args[0], scope), e.name);
      case ExprKind::getitem: {
        const Value object = eval(*e.args[0], scope);
        return get_item(object, eval(*e.args[1], scope));
      }
      case ExprKind::slice: {
        const Value object = eval(*e.args[0], scope);
        const auto start = slice_bound(e.args[1], scope);
        const auto stop = slice_bound(e.args[2], scope);
        const auto step = slice_bound(e.args[3], scope);
        return get_slice(object, start, stop, step);
      }
      case ExprKind::call: {
        const Expr& target = *e.args[0];
        Value callee;
        if (target.kind == ExprKind::getattr) {
          // obj.method(...): every attribute of a str or list is a Python method, so one the engine lacks is an
          // unsupported construct (dict attributes are keys, where a miss is Jinja2's undefined).
          const Value object = eval(*target.args[0], scope);
          step(items_of(object));
          callee = get_attribute(object, target.name);
          if (callee.is_undefined() && (object.is_string() || object.is_sequence())) {
            line_ = e.line;
            fail(std::string("unsupported construct: ") + type_name(object) + " method '" + target.name + "'");
          }
        } else {
          callee = eval(target, scope);
        }
        CallArgs args = eval_args(e, scope, 1);
        line_ = e.line;
        if (callee.kind == Kind::function) return callee.fn->call(args);
        if (callee.is_undefined()) fail(callee.s);
        fail(std::string("'") + type_name(callee) + "' object is not callable");
      }
      case ExprKind::filter: {
        const Value subject = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope, 1);
        line_ = e.line;
        step(items_of(subject));
        return e.filter(subject, args);
      }
      case ExprKind::test: {
        const Value subject = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope, 1);
        line_ = e.line;
        step(items_of(subject) + (args.positional.empty() ? 0 : items_of(args.positional[0])));
        return Value::boolean(e.test(subject, args) != e.negated);
      }
      case ExprKind::not_:
        return Value::boolean(!truthy(eval(*e.args[0], scope)));
      case ExprKind::negate:
      case ExprKind::plus: {
        const Value v = eval(*e.args[0], scope);
        const bool negate = e.kind == ExprKind::negate;
        if (v.kind == Kind::number) return Value::number(negate ? -v.f : v.f);
        if (v.kind == Kind::integer || v.kind == Kind::boolean) {
          const std::int64_t x = v.kind == Kind::boolean ? v.b : v.i;
          return Value::integer(negate ? checked('-', 0, x) : x);
        }
        if (v.is_undefined()) fail(v.s);
        fail(std::string("bad operand type for unary ") + (negate ? "-" : "+") + ": '" + type_name(v) + "'");
      }
      case ExprKind::and_: {
        Value left = eval(*e.args[0], scope);
        return truthy(left) ? eval(*e.args[1], scope) : left;
      }
      case ExprKind::or_: {
        Value left = eval(*e.args[0], scope);
        return truthy(left) ? left : eval(*e.args[1], scope);
      }
      case ExprKind::binary: {
        const Value left = eval(*e.args[0], scope);
        const Value right = eval(*e.args[1], scope);
        line_ = e.line;
        return binary(e.name, left, right);
      }
      case ExprKind::compare: {
        Value left = eval(*e.args[0], scope);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1], scope);
          line_ = e.line;
          step(items_of(left) + items_of(right));  // ==, < and in go through lists
          if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::condition: {
        if (truthy(eval(*e.args[0], scope))) return eval(*e.args[1], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
    }
    fail("unsupported expression");
  }

  static bool compare_op(const std::string& op, const Value& left, const Value& right) {
    if (op == "==") return equals(left, right);
    if (op == "!=") return !equals(left, right);
    if (op == "in") return contains(right, left);
    if (op == "not in") return !contains(right, left);
    const int c = compare(left, right, op.c_str());
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  static std::int64_t int_of(const Value& v) { return v.kind == Kind::boolean ? v.b : v.i; }

  // The bytes a copy of `items` takes: each value, and the text of each string (nested lists and dicts are shared,
  // strings copied), so that [s] * 100000 of a long s is refused like the string repeated.
  static std::size_t copied_bytes(const ValueList& items) {
    std::size_t bytes = items.size() * sizeof(Value);
    for (const Value& item : items) bytes += item.s.size();
    return bytes;
  }

  // Python's integers are unbounded; the engine's are 64-bit and say so instead of wrapping around.
  std::int64_t checked(char op, std::int64_t x, std::int64_t y) const {
    std::int64_t result = 0;
    bool overflow = false;
#if defined(__GNUC__) || defined(__clang__)
    overflow = op == '+'   ? __builtin_add_overflow(x, y, &result)
               : op == '-' ? __builtin_sub_overflow(x, y, &result)
                           : __builtin_mul_overflow(x, y, &result);
#else
    result = op == '+' ? x + y : op == '-' ? x - y : x * y;
#endif
    if (overflow) fail("integer overflow: the template's integers are 64-bit");
    return result;
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string left = to_str(a);
      const std::string right = to_str(b);
      check_string_size(left.size() + right.size());
      return Value::string(std::move(left += right));
    }
    if (a.is_undefined()) fail(a.s);
    if (b.is_undefined()) fail(b.s);
    const bool numbers = a.is_numeric() && b.is_numeric();
    const bool floats = numbers && (a.kind == Kind::number || b.kind == Kind::number);
    auto unsupported = [&]() -> Value {
      fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (op == "+") {
      if ((a.is_string() && a.markup) || (b.is_string() && b.markup)) {
        // Markup + str escapes the str (MarkupSafe): templates that mark literals |safe rely on it.
        if (!a.is_string() || !b.is_string()) return unsupported();
        std::string left = a.markup ? a.s : builtins_detail::html_escape(a.s);
        const std::string right = b.markup ? b.s : builtins_detail::html_escape(b.s);
        check_string_size(left.size() + right.size());
        Value joined = Value::string(std::move(left += right));
        joined.markup = true;
        return joined;
      }
      if (numbers)
        return floats ? Value::number(as_double(a) + as_double(b)) : Value::integer(checked('+', int_of(a), int_of(b)));
      if (a.is_string() && b.is_string()) {
        check_string_size(a.s.size() + b.s.size());
        return Value::string(a.s + b.s);
      }
      if (a.is_sequence() && a.kind == b.kind) {
        if (a.items->size() + b.items->size() > max_list_items ||
            copied_bytes(*a.items) + copied_bytes(*b.items) > max_string_bytes) {
          fail("list concatenation too large");
        }
        ValueList items = *a.items;
        items.insert(items.end(), b.items->begin(), b.items->end());
        return Value::list(std::move(items), a.kind);
      }
      if (a.is_string() || a.is_sequence()) {
        fail(std::string("can only concatenate ") + type_name(a) + " (not \"" + type_name(b) + "\") to " +
             type_name(a));
      }
      return unsupported();
    }
    if (op == "-") {
      if (!numbers) return unsupported();
      return floats ? Value::number(as_double(a) - as_double(b)) : Value::integer(checked('-', int_of(a), int_of(b)));
    }
    if (op == "*") {
      if (numbers)
        return floats ? Value::number(as_double(a) * as_double(b)) : Value::integer(checked('*', int_of(a), int_of(b)));
      const Value& text = a.is_numeric() ? b : a;
      const Value& count = a.is_numeric() ? a : b;
      if (count.kind == Kind::number || !count.is_numeric()) return unsupported();
      const std::size_t unit = text.is_string() ? text.s.size() : text.is_sequence() ? text.items->size() : 0;
      // An empty operand repeats to itself however large the count (no loop over it).
      const std::int64_t times = unit == 0 ? 0 : std::max<std::int64_t>(int_of(count), 0);
      const std::size_t limit = text.is_string() ? max_string_bytes : max_list_items;
      const std::size_t bytes = text.is_sequence() ? copied_bytes(*text.items) : unit;
      if (times > 0 && (unit > limit / static_cast<std::uint64_t>(times) ||
                        bytes > max_string_bytes / static_cast<std::uint64_t>(times))) {
        fail("repetition with '*' too large");
      }
      if (text.is_string()) {
        std::string out;
        for (std::int64_t k = 0; k < times; ++k) out += text.s;
        return Value::string(std::move(out));
      }
      if (text.is_sequence()) {
        ValueList items;
        for (std::int64_t k = 0; k < times; ++k) items.insert(items.end(), text.items->begin(), text.items->end());
        return Value::list(std::move(items), text.kind);
      }
      return unsupported();
    }
    if (op == "%" && a.is_string()) fail("unsupported construct: printf-style string formatting with '%'");
    if (!numbers) return unsupported();
    if (op == "/") {
      if (as_double(b) == 0.0) fail("division by zero");
      return Value::number(as_double(a) / as_double(b));
    }
    if (op == "//" || op == "%") {
      if (as_double(b) == 0.0) fail(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (floats) {
        const double x = as_double(a), y = as_double(b);
        if (op == "//") return Value::number(std::floor(x / y));
        double r = std::fmod(x, y);
        if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
        return Value::number(r);
      }
      const std::int64_t x = int_of(a), y = int_of(b);
      if (y == -1) return Value::integer(op == "//" ? checked('-', 0, x) : 0);  // x / -1 overflows at INT64_MIN
      std::int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    if (op == "**") {
      if (!floats && int_of(b) >= 0) {
        std::int64_t result = 1, base = int_of(a);
        for (std::int64_t k = int_of(b); k > 0; k >>= 1) {
          if (k & 1) result = checked('*', result, base);
          if (k > 1) base = checked('*', base, base);
        }
        return Value::integer(result);
      }
      return Value::number(std::pow(as_double(a), as_double(b)));
    }
    return unsupported();
  }
};

}  // namespace grpo::detail::jinja
