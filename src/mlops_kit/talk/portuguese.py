"""The kit's English words as the audience reads them: Brazilian Portuguese, beside the English.

The library speaks English (CLI, logs, MLflow tags); the notebooks show its tables and sentences
through ``screen.show`` and ``screen.say``, which look them up here. ``LABELS`` holds whole labels
(column names, row names, short values); ``SENTENCES`` holds the sentences the kit builds, as a
pattern of the English and its Portuguese. A test reads the committed notebooks' outputs and fails
on English left on screen.
"""

from __future__ import annotations

import re

LABELS: dict[str, str] = {
    # yes / no and other short values
    "yes": "sim",
    "no": "não",
    "none": "nenhum",
    "True": "sim",
    "False": "não",
    "ok": "ok",
    "FAILED": "FALHOU",
    "passed": "aprovado",
    "production": "produção",
    "staging": "staging",
    "soak": "soak",
    "(none)": "(nenhuma)",
    "files": "arquivos",
    "contents": "conteúdo",
    "refused": "recusado",
    "FINISHED": "concluído",
    "pipeline": "pipeline",
    "candidate": "candidato",
    "numeric": "numérica",
    "categorical": "categórica",
    "broken (never fitted)": "quebrado (nunca treinado)",
    "simulated-reviewer (simulator truth)": "revisor simulado (verdade do simulador)",
    "already the champion": "já era o champion",
    "trained now": "treinado agora",
    # row and column names
    "data version": "versão dos dados",
    "training rows / evaluation rows": "linhas de treino / de validação",
    "best candidate": "melhor candidato",
    "registered": "registrado",
    "quality gate": "quality gate",
    "promoted to champion": "promovido a champion",
    "reason": "motivo",
    "champion now": "champion agora",
    "source": "origem",
    "rows": "linhas",
    "dropped": "descartadas",
    "target": "alvo",
    "numeric features": "variáveis numéricas",
    "categorical features": "variáveis categóricas",
    "split": "separação",
    "train / eval rows": "linhas de treino / validação",
    "left out": "deixadas de fora",
    "accuracy": "acurácia",
    "f1_macro": "f1_macro",
    "mean_confidence": "confiança média",
    "low_confidence_share": "parte com baixa confiança",
    "run": "run",
    "kind": "tipo",
    "status": "status",
    "eval_f1_macro": "f1_macro (validação)",
    "eval_accuracy": "acurácia (validação)",
    "data_version": "versão dos dados",
    "version": "versão",
    "aliases": "aliases",
    "gate": "gate",
    "workflow": "workflow",
    "triggers": "gatilhos",
    "make targets, in order": "alvos do make, em ordem",
    "command": "comando",
    "what it does": "o que faz",
    "tests": "testes",
    "failed": "falharam",
    "green": "verde",
    "check": "verificação",
    "result": "resultado",
    "detail": "detalhe",
    "health": "saúde",
    "prediction": "previsão",
    "batch": "lote",
    "records": "registros",
    "model_version": "versão do modelo",
    "predictions (all / recent window)": "previsões (todas / janela recente)",
    "model version(s) in the window": "versões do modelo na janela",
    "reference data version": "versão dos dados de referência",
    "mean confidence": "confiança média",
    "classes predicted (in training)": "classes previstas (no treino)",
    "drifted features": "variáveis com drift",
    "retraining due": "retreino devido",
    "feature": "variável",
    "test": "teste",
    "statistic": "estatística",
    "p_value": "p-valor",
    "psi": "PSI",
    "drift": "drift",
    "predicted": "previsto",
    "confidence": "confiança",
    "labelled by": "rotulado por",
    "cases labelled": "casos rotulados",
    "cases still without a label": "casos ainda sem rótulo",
    "labels": "rótulos",
    "new data version": "nova versão dos dados",
    "built on data version": "construída sobre a versão dos dados",
    "labelled cases added (train / held out)": "casos rotulados somados (treino / reservados)",
    "cases skipped (already in the data)": "casos ignorados (já estavam nos dados)",
    "evaluation rows (season + production)": "linhas de validação (temporada + produção)",
    "challenger": "desafiante",
    "model": "modelo",
    "season_f1_macro": "f1_macro (temporada)",
    "production_accuracy": "acurácia (produção)",
    "production_mean_confidence": "confiança média (produção)",
    "normal": "normal",
    "shifted, before": "com a mudança, antes",
    "shifted, after": "com a mudança, depois",
    "model version served": "versão do modelo servida",
    "low-confidence share": "parte com baixa confiança",
    "accuracy (simulator truth)": "acurácia (verdade do simulador)",
    "accuracy on held-out production cases": "acurácia nos casos de produção reservados",
    "no_measurements": "sem medidas",
    "missing_target": "sem alvo",
    "missing_split_value": "sem valor na coluna de divisão",
    "duplicate_case": "casos repetidos",
    # the environment serving a model against the one that trained it (environment.py)
    "environment": "ambiente",
    "its API follows": "a API segue o alias",
    "prediction log": "log de previsões",
    "the settings' store": "o do kit (store.db)",
    "package": "pacote",
    "trained with": "treinado com",
    "here": "aqui",
    "match": "confere",
    "note": "observação",
    "only the patch version differs": "só a versão de patch difere",
    "no version recorded by the model": "o modelo não registrou a versão",
    "no model to compare": "nenhum modelo para comparar",
    "environment, trained with -> here:": "ambiente, treinado com → aqui:",
    # the hyper-parameter search (mlops-kit tune, notebook 02)
    "engine": "motor",
    "tune run": "run da busca",
    "trials": "tentativas",
    "cv_f1_macro": "f1_macro (validação cruzada)",
    "best_params": "melhores hiperparâmetros",
    "params": "hiperparâmetros",
    "parent": "run pai",
    "search": "busca",
    "trial": "tentativa",
    # batch traffic beside the API's (monitoring's source), a batch's summary (mlops-kit score)
    "traffic": "tráfego",
    "api": "API",
    "predictions": "previsões",
    "rows in": "linhas lidas",
    "scored": "pontuadas",
    "rejected": "rejeitadas",
    "scored file": "arquivo pontuado",
    "rejects file": "arquivo de rejeitados",
    # the challenger in shadow (compare.py)
    "not yet: challenger in shadow": "ainda não: desafiante em shadow",
    "requests compared": "requisições comparadas",
    "predictions compared": "previsões comparadas",
    "agreement": "concordância",
    "labelled cases": "casos rotulados",
    "served": "servido",
    "shadow": "shadow",
    "versions": "versões",
}

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
_N = rf"(?P<n>{_NUMBER})"
_NUMBERS = rf"{_NUMBER}(?: / {_NUMBER})*"  # thresholds the API used: '0.7' or '0.55 / 0.70'

# (English pattern, Portuguese); the whole text must match. Groups carry names, values, numbers.
SENTENCES: list[tuple[str, str]] = [
    # the gate (registry)
    (
        r"(?P<m>\w+)=(?P<s>[\d.]+) passes the gate \((?P<t>[\d.]+)\) and there is no champion yet",
        "{m} = {s} passa o gate ({t}) e ainda não há champion",
    ),
    (
        r"(?P<m>\w+)=(?P<s>[\d.]+) is below the quality gate \((?P<t>[\d.]+)\)",
        "{m} = {s} fica abaixo do quality gate ({t})",
    ),
    (
        r"(?P<m>\w+)=(?P<s>[\d.]+) beats champion (?P<v>v\d+) \((?P<c>[\d.]+)\) on the same "
        r"evaluation data",
        "{m} = {s} supera o champion {v} ({c}) nos mesmos dados de validação",
    ),
    (
        r"(?P<m>\w+)=(?P<s>[\d.]+) does not beat champion (?P<v>v\d+) \((?P<c>[\d.]+)\) on the "
        r"same evaluation data",
        "{m} = {s} não supera o champion {v} ({c}) nos mesmos dados de validação",
    ),
    (r"(?P<who>.+ v\d+) is the new champion: (?P<why>.+)", "{who} é o novo champion: {why}"),
    (r"quality gate refused (?P<who>.+ v\d+): (?P<why>.+)", "o quality gate recusou {who}: {why}"),
    # the data card and tables' values
    (r"(?P<a>\d+) raw → (?P<b>\d+) clean", "{a} brutas → {b} limpas"),
    (
        r"by (?P<by>\S+): train (?P<t>.*) / eval (?P<e>.*)",
        "por {by}: treino {t} / validação {e}",
    ),
    (r"best (?P<m>\w+)", "melhor {m}"),
    (r"(?P<what>[a-z_]+): (?P<n>\d+)", "{what}: {n}"),  # counts by name: no_measurements: 2
    (  # several counts: missing_target: 1, no_measurements: 2
        r"(?P<first>[a-z_]+: \d+), (?P<rest>[a-z_]+: \d+(?:, [a-z_]+: \d+)*)",
        "{first}, {rest}",
    ),
    (r"(?P<what>.+) -> (?P<who>.+ v\d+)", "{what} → {who}"),
    (r"challenger (?P<v>v\d+) \((?P<c>\w+)\)", "desafiante {v} ({c})"),
    # the starting point of the loop (talk/loop.py)
    (
        r"champion (?P<v>v\d+), trained on data version (?P<d>\w+): (?P<how>.+)",
        "champion {v}, treinado na versão dos dados {d}: {how}",
    ),
    (r"moved back from (?P<v>v\d+)", "voltou de {v}"),
    # smoke test (delivery)
    (r"status=(?P<s>\w+), model loaded=(?P<l>\w+)", "status={s}, modelo carregado={l}"),
    (
        r"API serves (?P<a>v\d+), registry (?P<alias>\w+) is (?P<b>v\d+)",
        "a API serve {a}, o {alias} do registry é {b}",
    ),
    (
        r"API serves no model, registry (?P<alias>\w+) is (?P<b>v\d+)",
        "a API não serve nenhum modelo, o {alias} do registry é {b}",
    ),
    # CD through environments (deploy.py)
    (  # the soak's detail, in its two halves (a text is translated piece by piece at "; ")
        rf"(?P<n>\d+) requests, (?P<f>\d+) failed \((?P<r>{_NUMBER})%, budget (?P<b>{_NUMBER})%\)",
        "{n} requisições, {f} falharam ({r}%, orçamento {b}%)",
    ),
    (
        rf"p50 (?P<p50>{_NUMBER}) ms, p99 (?P<p99>{_NUMBER}) ms \(budget (?P<pb>{_NUMBER}) ms\)",
        "p50 {p50} ms, p99 {p99} ms (orçamento {pb} ms)",
    ),
    (
        r"deploy (?P<v>v\d+) to (?P<env>\w+): (?P<verdict>passed|FAILED)",
        "entrega de {v} em {env}: {verdict}",
    ),
    (
        r"(?P<alias>staging|champion): (?P<a>\S+) -> (?P<b>v\d+) \(it failed\)",
        "{alias}: {a} → {b} (falhou)",
    ),
    (r"(?P<alias>staging|champion): (?P<a>\S+) -> (?P<b>v\d+)", "{alias}: {a} → {b}"),
    (r"(?P<env>staging|production) now serves (?P<v>v\d+)", "{env} agora serve {v}"),
    (
        r"no (?P<env>staging|production) API answered on (?P<url>\S+): one was started for the "
        r"checks",
        "nenhuma API de {env} respondia em {url}: uma subiu só para as verificações",
    ),
    (
        r"the (?P<env>staging|production) API on (?P<url>\S+) follows its alias",
        "a API de {env} em {url} segue o seu alias",
    ),
    (
        r"(?P<v>v\d+) failed staging \(check: (?P<c>\w+)\)",
        "{v} falhou em staging (verificação: {c})",
    ),
    (
        r"(?P<v>v\d+) was never deployed to staging: mlops-kit deploy --env staging first",
        "{v} nunca foi entregue em staging: antes, mlops-kit deploy --env staging",
    ),
    (r"no model to ask", "nenhum modelo para perguntar"),
    (
        rf"HTTP (?P<h>\d+): (?P<c>.+) \((?P<n>{_NUMBER})\) by (?P<v>v\d+)",
        "HTTP {h}: {c} ({n}) por {v}",
    ),
    (r"smoke test of (?P<who>.+):", "smoke test de {who}:"),
    # the environment check (environment.py), its table's lines before the checks' lines
    (
        r"  (?P<r>ok|FAILED) +(?P<p>[\w.-]+) +(?P<m>\S+) -> (?P<h>\S+)  (?P<note>.+)",
        "  {r} {p}: {m} → {h}, {note}",
    ),
    (r"  (?P<r>ok|FAILED) +(?P<p>[\w.-]+) +(?P<m>\S+) -> (?P<h>\S+)", "  {r} {p}: {m} → {h}"),
    (
        r"Python and the recorded packages \((?P<n>\d+)\) match the training environment",
        "Python e os pacotes registrados ({n}) conferem com o ambiente de treino",
    ),
    (
        r"(?P<p>\S+) (?P<m>\S+) \(training\) vs (?P<h>\S+) \(here\): (?P<note>.+)",
        "{p} {m} (treino) vs {h} (aqui): {note}",
    ),
    (
        r"(?P<how>major|minor) version differs: (?P<fix>.+), or retrain the model in this "
        r"environment",
        "versão {how} difere: {fix}, ou retreine o modelo neste ambiente",
    ),
    (
        r"the versions differ: (?P<fix>.+), or retrain the model in this environment",
        "as versões diferem: {fix}, ou retreine o modelo neste ambiente",
    ),
    (
        r"not installed here: (?P<fix>.+), or retrain the model in this environment",
        "não instalado aqui: {fix}, ou retreine o modelo neste ambiente",
    ),
    (
        r"needs (?P<req>\S+): install it here, or retrain the model in this environment",
        "exige {req}: instale aqui, ou retreine o modelo neste ambiente",
    ),
    (r"install (?P<pin>\S+) here", "instale {pin} aqui"),
    (r"use Python (?P<v>\S+) here", "use Python {v} aqui"),
    (r"  (?P<r>ok|FAILED) +(?P<c>\w+) +(?P<d>.+)", "  {r} {c}: {d}"),
    (r"rolled back: champion (?P<a>v\d+) -> (?P<b>v\d+)", "rollback: champion {a} → {b}"),
    (r"the API now serves (?P<v>v\d+)", "a API agora serve {v}"),
    # the challenger in shadow (registry, compare)
    (
        r"it scores live traffic in shadow before it is promoted",
        "ele pontua o tráfego ao vivo em shadow antes de ser promovido",
    ),
    (
        r"scored (?P<n>\d+) live predictions in shadow",
        "pontuou {n} previsões ao vivo em shadow",
    ),
    (
        rf"agreement (?P<a>{_NUMBER}), mean confidence (?P<s>{_NUMBER}) against (?P<c>{_NUMBER})",
        "concordância {a}, confiança média {s} contra {c}",
    ),
    # traffic (the simulator's shifts)
    (
        r"no change: records as measured in the newest season",
        "sem mudança: registros como medidos na temporada mais nova",
    ),
    (r"no change: records as held out", "sem mudança: registros como reservados"),
    (
        rf"a calliper zeroed wrong: bill length and bill depth read {_N} mm too much",
        "um paquímetro zerado errado: comprimento e profundidade do bico saem {n} mm maiores",
    ),
    (
        rf"a scale that lost its tare: body mass reads {_N} g too much",
        "uma balança que perdeu a tara: a massa corporal sai {n} g maior",
    ),
    (
        rf"a new Chinstrap colony on Biscoe, where the model never saw one, sends a share of {_N} "
        r"of the records",
        "uma colônia nova de Chinstrap em Biscoe, onde o modelo nunca viu uma, manda uma parte de "
        "{n} dos registros",
    ),
    (rf"(?P<c>.+) reads? {_N} more", "{c}: valores {n} maiores"),
    (
        rf"a share of {_N} of the records come with (?P<c>\S+) = (?P<v>.+)",
        "uma parte de {n} dos registros chega com {c} = {v}",
    ),
    # monitoring
    (
        rf"low-confidence share \(< (?P<t>{_NUMBERS})\)",
        "parte com baixa confiança (< {t})",
    ),
    (rf"(?P<s>{_NUMBER}) \(limit (?P<l>{_NUMBER})\)", "{s} (limite {l})"),
    (r"retraining due: (?P<why>.+)", "retreino devido: {why}"),
    (
        r"no retraining needed: confidence and inputs look like the training data",
        "retreino não é necessário: confiança e entradas parecidas com as do treino",
    ),
    (
        r"nothing to monitor: the prediction log is empty",
        "nada a monitorar: o log de previsões está vazio",
    ),
    (
        rf"low-confidence share (?P<s>{_NUMBER}) is above (?P<l>{_NUMBER}) \(confidence < "
        rf"(?P<t>{_NUMBERS})\)",
        "parte com baixa confiança {s} acima de {l} (confiança < {t})",
    ),
    (
        rf"input drift in (?P<f>.+) \(p < (?P<p>{_NUMBER}) and PSI > (?P<psi>{_NUMBER})\)",
        "drift de entrada em {f} (p < {p} e PSI > {psi})",
    ),
]

COMPILED = [(re.compile(pattern + r"\Z", re.DOTALL), pt) for pattern, pt in SENTENCES]
SEPARATORS = ("; ", "\n")  # a text made of several sentences is translated piece by piece
