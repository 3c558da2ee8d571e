#pragma once
// The syntax tree and parser of grpo::ChatTemplate's Jinja engine. The grammar and operator precedence are
// Jinja2's (parser.py): condexpr < or < and < not < comparisons/in < + - < ~ < * / // % < ** < unary - + <
// filters/tests/calls < postfix . [] (). Statements: for (with else, a loop filter, loop.*), if/elif/else, set
// (names, tuples, namespace attributes, blocks), macro, filter blocks, break/continue, transformers'
// {% generation %}.
// Filters and tests are resolved here, so an unknown one fails at construction with its line. Internal.

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/tokenizers/detail/jinja_builtins.hpp"
#include "grpo/tokenizers/detail/jinja_lexer.hpp"
#include "grpo/tokenizers/detail/jinja_value.hpp"

namespace grpo::detail::jinja {

enum class ExprKind : std::uint8_t {
  literal,    // value
  name,       // name
  list,       // args: items
  tuple,      // args: items
  dict,       // args: key, value, key, value, ...
  getattr,    // args[0].name
  getitem,    // args[0][args[1]]
  slice,      // args[0][args[1]:args[2]:args[3]] (null parts absent)
  call,       // args[0](args[1:], kwargs)
  filter,     // args[0] | name(args[1:], kwargs)
  test,       // args[0] is [not] name(args[1:], kwargs)
  not_,       // not args[0]
  negate,     // -args[0]
  plus,       // +args[0]
  binary,     // args[0] <name> args[1] for + - * / // % ** ~
  and_,       // args[0] and args[1]
  or_,        // args[0] or args[1]
  compare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained)
  condition,  // args[1] if args[0] else args[2] (args[2] null: undefined)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  int line;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
  int height = 1;  // 1 + the tallest operand's height (Parser::sized), at most max_nesting

  Expr(ExprKind k, int l) : kind(k), line(l) {}
};

enum class StmtKind : std::uint8_t {
  text,       // text
  print,      // {{ exprs[0] }}
  if_,        // exprs: conditions; bodies: one per condition, plus the else body
  for_,       // names: targets; exprs[0]: iterable, exprs[1]: loop filter (or null); bodies: body, else body
  set,        // names: targets (one, or a tuple); text: namespace attribute (ns.attr = ...); exprs[0]: value
  set_block,  // names[0] = rendered bodies[0]
  macro,      // text: name; names: parameters; exprs: defaults (null: required); bodies[0]
  break_,
  continue_,
  block,         // bodies[0] in the same scope ({% generation %})
  filter_block,  // exprs[0] (a filter chain over the name filter_body_name) applied to rendered bodies[0]
};

/// The variable a {% filter %} block's chain reads its rendered body from (no template can name it).
inline const char* const filter_body_name = "\x01filter body";

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Stmt {
  StmtKind kind;
  int line;
  std::string text;
  std::vector<std::string> names;
  std::vector<ExprPtr> exprs;
  std::vector<StmtList> bodies;

  Stmt(StmtKind k, int l) : kind(k), line(l) {}
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  /// The whole template.
  StmtList parse_template() {
    std::string end_tag;
    StmtList body = parse_body({}, end_tag);
    return body;
  }

 private:
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;  // recursion of the parse functions that nest (blocks, parentheses, unary operators)

  // Bounds the parser's recursion (and so the stack) at max_nesting levels.
  class Nesting {
   public:
    explicit Nesting(Parser& parser) : parser_(parser) {
      if (++parser_.depth_ > max_nesting) parser_.fail("the template nests blocks or expressions too deeply");
    }
    ~Nesting() { --parser_.depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  // `e`, whose operands are built, with its height; a taller expression than max_nesting is an error, since
  // evaluating and destroying it recurse over its height (a chain a ~ a ~ a ... is built without recursion).
  ExprPtr sized(ExprPtr e) {
    int tallest = 0;
    for (const auto& operand : e->args) tallest = operand ? std::max(tallest, operand->height) : tallest;
    for (const auto& entry : e->kwargs) tallest = std::max(tallest, entry.second->height);
    e->height = tallest + 1;
    if (e->height > max_nesting) fail("an expression nests more than " + std::to_string(max_nesting) + " deep");
    return e;
  }

  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(std::size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& advance() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  [[noreturn]] void fail(const std::string& message, int line = 0) const {
    throw TemplateError(message, line ? line : current().line);
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::name:
        return "'" + t.text + "'";
      case TokenType::string:
        return "a string";
      case TokenType::integer:
      case TokenType::number:
        return "a number";
      case TokenType::op:
        return "'" + t.text + "'";
      case TokenType::block_end:
        return "end of statement block";
      case TokenType::variable_end:
        return "end of print statement";
      case TokenType::eof:
        return "end of template";
      default:
        return "template text";
    }
  }

  bool is_op(const char* op) const { return current().type == TokenType::op && current().text == op; }
  bool is_name(const char* name) const { return current().type == TokenType::name && current().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(current()));
  }
  std::string expect_name() {
    if (current().type != TokenType::name) fail("expected a name, got " + describe(current()));
    return advance().text;
  }
  void expect_block_end() {
    if (current().type != TokenType::block_end) fail("expected end of statement block, got " + describe(current()));
    advance();
  }

  // --- statements --------------------------------------------------------------------------------------------

  // Statements until one of `end_tags` opens a block; that tag's name is left in `found` (its token consumed).
  StmtList parse_body(std::initializer_list<const char*> end_tags, std::string& found) {
    const Nesting nesting(*this);
    StmtList body;
    while (true) {
      const Token& t = current();
      if (t.type == TokenType::eof) {
        if (end_tags.size() == 0) return body;
        std::string expected;
        for (const char* tag : end_tags) expected += (expected.empty() ? "'" : " or '") + std::string(tag) + "'";
        fail("unexpected end of template, expected " + expected);
      }
      if (t.type == TokenType::data) {
        auto s = std::make_unique<Stmt>(StmtKind::text, t.line);
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == TokenType::variable_begin) {
        const int line = t.line;
        advance();
        auto s = std::make_unique<Stmt>(StmtKind::print, line);
        s->exprs.push_back(parse_tuple(true));
        if (current().type != TokenType::variable_end)
          fail("expected end of print statement, got " + describe(current()));
        advance();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::block_begin) {
        advance();
        const Token& keyword = current();
        if (keyword.type != TokenType::name) fail("expected a statement name, got " + describe(keyword));
        for (const char* tag : end_tags) {
          if (keyword.text == tag) {
            found = tag;
            advance();
            return body;
          }
        }
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token keyword = advance();
    const std::string& k = keyword.text;
    if (k == "for") return parse_for(keyword.line);
    if (k == "if") return parse_if(keyword.line);
    if (k == "set") return parse_set(keyword.line);
    if (k == "macro") return parse_macro(keyword.line);
    if (k == "break" || k == "continue") {
      if (loop_depth_ == 0) fail("'" + k + "' outside of a for loop", keyword.line);
      expect_block_end();
      return std::make_unique<Stmt>(k == "break" ? StmtKind::break_ : StmtKind::continue_, keyword.line);
    }
    if (k == "generation") {
      expect_block_end();
      auto s = std::make_unique<Stmt>(StmtKind::block, keyword.line);
      std::string found;
      s->bodies.push_back(parse_body({"endgeneration"}, found));
      expect_block_end();
      return s;
    }
    if (k == "filter") {
      auto s = std::make_unique<Stmt>(StmtKind::filter_block, keyword.line);
      auto body = make(ExprKind::name, keyword.line);
      body->name = filter_body_name;
      s->exprs.push_back(parse_filter(std::move(body), true));
      expect_block_end();
      std::string found;
      s->bodies.push_back(parse_body({"endfilter"}, found));
      expect_block_end();
      return s;
    }
    static const char* const known[] = {"block", "extends",    "include", "import", "from", "with",
                                        "call",  "autoescape", "do",      "raw",    "trans"};
    for (const char* name : known) {
      if (k == name) fail("unsupported construct: {% " + k + " %}", keyword.line);
    }
    if (k.rfind("end", 0) == 0 || k == "else" || k == "elif") fail("unexpected '" + k + "'", keyword.line);
    fail("unknown statement '" + k + "'", keyword.line);
  }

  // Assignment targets: a name, a tuple of names (optionally in parentheses), or with `allow_namespace` ns.attr.
  void parse_targets(std::vector<std::string>& names, std::string* attribute) {
    const bool parenthesised = skip_op("(");
    names.push_back(expect_name());
    if (attribute && is_op(".")) {
      advance();
      *attribute = expect_name();
      return;
    }
    while (skip_op(",")) {
      if (parenthesised && is_op(")")) break;
      if (current().type != TokenType::name) break;
      names.push_back(expect_name());
    }
    if (parenthesised) expect_op(")");
  }

  StmtPtr parse_for(int line) {
    auto s = std::make_unique<Stmt>(StmtKind::for_, line);
    parse_targets(s->names, nullptr);
    if (!skip_name("in")) fail("expected 'in' in a for loop, got " + describe(current()));
    s->exprs.push_back(parse_tuple(false, "recursive"));
    ExprPtr filter;
    if (skip_name("if")) filter = parse_expression(true);
    s->exprs.push_back(std::move(filter));
    if (is_name("recursive")) fail("unsupported construct: recursive for loops");
    expect_block_end();
    ++loop_depth_;
    std::string found;
    s->bodies.push_back(parse_body({"endfor", "else"}, found));
    --loop_depth_;
    if (found == "else") {
      expect_block_end();
      s->bodies.push_back(parse_body({"endfor"}, found));
    } else {
      s->bodies.emplace_back();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_if(int line) {
    auto s = std::make_unique<Stmt>(StmtKind::if_, line);
    while (true) {
      s->exprs.push_back(parse_tuple(false));
      expect_block_end();
      std::string found;
      s->bodies.push_back(parse_body({"elif", "else", "endif"}, found));
      if (found == "elif") continue;
      if (found == "else") {
        expect_block_end();
        s->bodies.push_back(parse_body({"endif"}, found));
      } else {
        s->bodies.emplace_back();
      }
      expect_block_end();
      return s;
    }
  }

  StmtPtr parse_set(int line) {
    std::vector<std::string> names;
    std::string attribute;
    parse_targets(names, &attribute);
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(StmtKind::set, line);
      s->names = std::move(names);
      s->text = attribute;
      s->exprs.push_back(parse_tuple(true));
      expect_block_end();
      return s;
    }
    if (!attribute.empty() || names.size() != 1) fail("expected '=' in a set statement");
    if (is_op("|")) fail("unsupported construct: filtered {% set %} block");
    expect_block_end();
    auto s = std::make_unique<Stmt>(StmtKind::set_block, line);
    s->names = std::move(names);
    std::string found;
    s->bodies.push_back(parse_body({"endset"}, found));
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro(int line) {
    auto s = std::make_unique<Stmt>(StmtKind::macro, line);
    s->text = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->names.empty()) expect_op(",");
      if (is_op(")")) break;
      s->names.push_back(expect_name());
      ExprPtr fallback;
      if (skip_op("=")) {
        fallback = parse_expression(true);
      } else if (!s->exprs.empty() && s->exprs.back()) {
        fail("non-default argument follows default argument");
      }
      s->exprs.push_back(std::move(fallback));
    }
    expect_op(")");
    expect_block_end();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    std::string found;
    s->bodies.push_back(parse_body({"endmacro"}, found));
    loop_depth_ = saved_depth;
    if (current().type == TokenType::name && current().text == s->text) advance();
    expect_block_end();
    return s;
  }

  // --- expressions -------------------------------------------------------------------------------------------

  ExprPtr make(ExprKind kind, int line) { return std::make_unique<Expr>(kind, line); }

  bool is_tuple_end(const char* extra_end) const {
    const Token& t = current();
    if (t.type == TokenType::variable_end || t.type == TokenType::block_end) return true;
    if (t.type == TokenType::op && t.text == ")") return true;
    return extra_end && t.type == TokenType::name && t.text == extra_end;
  }

  // Jinja2's parse_tuple: expressions separated by commas (a tuple when there is a comma).
  ExprPtr parse_tuple(bool with_condexpr, const char* extra_end = nullptr, bool explicit_parentheses = false) {
    const int line = current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail("expected an expression, got " + describe(current()));
    }
    auto e = make(ExprKind::tuple, line);
    e->args = std::move(items);
    return sized(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    const Nesting nesting(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const Nesting nesting(*this);
    int line = current().line;
    ExprPtr expr1 = parse_or();
    while (skip_name("if")) {
      ExprPtr expr2 = parse_or();
      ExprPtr expr3;
      if (skip_name("else")) expr3 = parse_condexpr();
      auto e = make(ExprKind::condition, line);
      e->args.push_back(std::move(expr2));
      e->args.push_back(std::move(expr1));
      e->args.push_back(std::move(expr3));
      expr1 = sized(std::move(e));
      line = current().line;
    }
    return expr1;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const int line = advance().line;
      auto e = make(ExprKind::or_, line);
      e->args.push_back(std::move(left));
      e->args.push_back(parse_and());
      left = sized(std::move(e));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const int line = advance().line;
      auto e = make(ExprKind::and_, line);
      e->args.push_back(std::move(left));
      e->args.push_back(parse_not());
      left = sized(std::move(e));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Nesting nesting(*this);
      const int line = advance().line;
      auto e = make(ExprKind::not_, line);
      e->args.push_back(parse_not());
      return sized(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = current().line;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = current();
      if (t.type == TokenType::op &&
          (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=")) {
        ops.push_back(advance().text);
      } else if (is_name("in")) {
        advance();
        ops.push_back("in");
      } else if (is_name("not") && peek().type == TokenType::name && peek().text == "in") {
        advance();
        advance();
        ops.push_back("not in");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(ExprKind::compare, line);
    e->args.push_back(std::move(first));
    for (auto& operand : operands) e->args.push_back(std::move(operand));
    e->ops = std::move(ops);
    return sized(std::move(e));
  }

  ExprPtr binary(ExprPtr left, const std::string& op, ExprPtr right, int line) {
    auto e = make(ExprKind::binary, line);
    e->name = op;
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return sized(std::move(e));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token op = advance();
      left = binary(std::move(left), op.text, parse_concat(), op.line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token op = advance();
      left = binary(std::move(left), "~", parse_math2(), op.line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token op = advance();
      left = binary(std::move(left), op.text, parse_pow(), op.line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token op = advance();
      left = binary(std::move(left), "**", parse_unary(true), op.line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Nesting nesting(*this);
      const Token op = advance();
      node = make(op.text == "-" ? ExprKind::negate : ExprKind::plus, op.line);
      node->args.push_back(parse_unary(false));
      node = sized(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = current();
    const int line = t.line;
    if (t.type == TokenType::name) {
      const std::string text = advance().text;
      auto e = make(ExprKind::literal, line);
      if (text == "true" || text == "True") {
        e->value = Value::boolean(true);
      } else if (text == "false" || text == "False") {
        e->value = Value::boolean(false);
      } else if (text == "none" || text == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::name;
        e->name = text;
      }
      return e;
    }
    if (t.type == TokenType::string) {
      std::string text;
      while (current().type == TokenType::string) text += advance().text;
      auto e = make(ExprKind::literal, line);
      e->value = Value::string(text);
      return e;
    }
    if (t.type == TokenType::integer || t.type == TokenType::number) {
      const Token number = advance();
      auto e = make(ExprKind::literal, line);
      e->value = number.type == TokenType::integer ? Value::integer(number.integer) : Value::number(number.number);
      return e;
    }
    if (is_op("(")) {
      advance();
      ExprPtr e = parse_tuple(true, nullptr, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      auto e = make(ExprKind::list, line);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return sized(std::move(e));
    }
    if (is_op("{")) {
      advance();
      auto e = make(ExprKind::dict, line);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return sized(std::move(e));
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token t = advance();
    if (t.text == ".") {
      const Token attribute = advance();
      if (attribute.type == TokenType::name) {
        auto e = make(ExprKind::getattr, t.line);
        e->name = attribute.text;
        e->args.push_back(std::move(node));
        return sized(std::move(e));
      }
      if (attribute.type != TokenType::integer) fail("expected a name or number after '.'", attribute.line);
      auto index = make(ExprKind::literal, attribute.line);
      index->value = Value::integer(attribute.integer);
      auto e = make(ExprKind::getitem, t.line);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(index));
      return sized(std::move(e));
    }
    // '[': an index, a slice, or (Jinja2) a tuple of them.
    std::vector<ExprPtr> subscripts;
    while (!is_op("]")) {
      if (!subscripts.empty()) expect_op(",");
      subscripts.push_back(parse_subscribed());
    }
    expect_op("]");
    if (subscripts.size() != 1) fail("unsupported construct: a tuple subscript", t.line);
    ExprPtr subscript = std::move(subscripts[0]);
    if (subscript->kind == ExprKind::slice && !subscript->args.empty() && !subscript->args[0]) {
      subscript->args[0] = std::move(node);
      return sized(std::move(subscript));
    }
    auto e = make(ExprKind::getitem, t.line);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(subscript));
    return sized(std::move(e));
  }

  // One subscript: an expression, or a slice [start]:[stop][:[step]] returned as a slice node whose args[0]
  // (the sliced object) is left for the caller.
  ExprPtr parse_subscribed() {
    const int line = current().line;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    advance();  // ':'
    auto e = make(ExprKind::slice, line);
    e->args.push_back(nullptr);
    e->args.push_back(std::move(start));
    ExprPtr stop, step;
    if (!is_op(":") && !is_op("]") && !is_op(",")) stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) step = parse_expression(true);
    }
    e->args.push_back(std::move(stop));
    e->args.push_back(std::move(step));
    return sized(std::move(e));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("unsupported construct: *args or **kwargs in a call");
      if (current().type == TokenType::name && peek().type == TokenType::op && peek().text == "=") {
        std::string key = advance().text;
        advance();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("a positional argument follows a keyword argument");
        e.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(ExprKind::call, current().line);
    e->args.push_back(std::move(node));
    parse_call_args(*e);
    return sized(std::move(e));
  }

  // `| name(args) | name2 ...`; with `start_inline` the first filter has no '|' ({% filter name %}).
  ExprPtr parse_filter(ExprPtr node, bool start_inline = false) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      const int line = current().line;
      std::string name = expect_name();
      while (skip_op(".")) name += "." + expect_name();
      auto e = make(ExprKind::filter, line);
      e->name = name;
      e->filter = find_filter(name);
      if (!e->filter) fail("unsupported construct: filter '" + name + "'", line);
      e->args.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*e);
      node = sized(std::move(e));
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const int line = advance().line;  // 'is'
    const bool negated = skip_name("not");
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    auto e = make(ExprKind::test, line);
    e->name = name;
    e->negated = negated;
    e->test = find_test(name);
    if (!e->test) fail("unsupported construct: test '" + name + "'", line);
    e->args.push_back(std::move(node));
    const Token& t = current();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t.type == TokenType::name || t.type == TokenType::string || t.type == TokenType::integer ||
                t.type == TokenType::number || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return sized(std::move(e));
  }
};

/// The syntax tree of a template.
inline StmtList parse(const std::string& source) { return Parser(tokenize(source)).parse_template(); }

}  // namespace grpo::detail::jinja
