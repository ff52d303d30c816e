*** Settings ***
Documentation    Fault impact verdicts without a VM: fio's nbd engine straight at an injector on this
...              host (logs on the host's wall clock, log_unix_epoch=1), a spike in the middle of the
...              run. The verdict passes within its limits and fails, one line per broken limit,
...              outside them.

Resource         common.resource

Test Tags        acceptance    fault    impact


*** Variables ***
${BROKEN}     2 fault impact limit(s) broken:
${DROP}       fault 'read 30 ms' at *: max_iops_drop_pct is * %, above the limit 50 %
${LATENCY}    fault 'read 30 ms' at *: max_latency_ms is * ms, above the limit 10 ms


*** Test Cases ***
Spike Impact On A Host Run
    ${result}    ${events}    Run Workload With Spike    nbdkit    30ms
    # Recovery to 75 % of the baseline: fio shares this host's two cores with the injector.
    ${impacts}    Fault Impact Should Be Within    ${result}    ${events}
    ...    max_latency_ms=60    max_recovery_s=3    baseline=2s    tolerance_pct=25
    Should Be True    ${impacts}[0][max_latency_ms] > 25
    Should Be True    ${impacts}[0][iops_drop_pct] > 80
    Should Be True    2.0 < ${impacts}[0][start_s] < 3.5
    Run Keyword And Expect Error    ${BROKEN}\n${DROP}\n${LATENCY}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=10    max_iops_drop_pct=50
    ...    baseline=2s
    Run Keyword And Expect Error    baseline 'soon' is not a time*
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=10    baseline=soon
