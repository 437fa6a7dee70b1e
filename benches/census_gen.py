#!/usr/bin/env python3
"""Write a synthetic CIN census extract of about SIZE_MB megabytes (default 100) to stdout, in
the DfE schema: children with one or two episodes, section 47 enquiries, conferences, plans
and reviews, plus the identifiers and characteristics cpwatch must skip. For the census
import benchmark (benches/run-census-bench.sh). Every child is made up."""
import random
import sys
from datetime import date, timedelta

size = int(float(sys.argv[1] if len(sys.argv) > 1 else 100) * 1024 * 1024)
rng = random.Random(14)
out = sys.stdout
out.write("""<?xml version="1.0" encoding="UTF-8"?>
<Message>
 <Header>
  <CollectionDetails><Collection>CIN</Collection><Year>2025</Year><ReferenceDate>2025-03-31</ReferenceDate></CollectionDetails>
  <Source><SourceLevel>L</SourceLevel><LEA>340</LEA><SoftwareCode>Local Authority</SoftwareCode><Release>1</Release><SerialNo>001</SerialNo><DateTime>2025-06-01T08:00:00</DateTime></Source>
 </Header>
 <Children>
""")
written, n = 0, 0
base = date(2024, 4, 1)
while written < size:
    n += 1
    parts = [f"""  <Child>
   <ChildIdentifiers><LAchildID>BENCH{n:08d}</LAchildID><UPN>A{n:012d}</UPN><PersonBirthDate>{base - timedelta(days=rng.randrange(365, 6000))}</PersonBirthDate><GenderCurrent>{rng.choice('12')}</GenderCurrent></ChildIdentifiers>
   <ChildCharacteristics><Ethnicity>WBRI</Ethnicity><Disabilities><Disability>NONE</Disability></Disabilities></ChildCharacteristics>
"""]
    first = rng.randrange(0, 300)
    for ep in range(rng.choice((1, 1, 2))):
        ref = base + timedelta(days=first + ep * 40)
        s47 = ref + timedelta(days=rng.randrange(0, 10))
        icpc = s47 + timedelta(days=rng.randrange(5, 30))
        review = icpc + timedelta(days=rng.randrange(60, 100))
        parts.append(f"""   <CINdetails>
    <CINreferralDate>{ref}</CINreferralDate><ReferralSource>5A</ReferralSource><PrimaryNeedCode>N1</PrimaryNeedCode>
    <DateOfInitialCPC>{icpc}</DateOfInitialCPC>
    <Assessments><AssessmentActualStartDate>{ref}</AssessmentActualStartDate><AssessmentAuthorisationDate>{ref + timedelta(days=30)}</AssessmentAuthorisationDate><FactorsIdentifiedAtAssessment><AssessmentFactors>2B</AssessmentFactors></FactorsIdentifiedAtAssessment></Assessments>
    <CINPlanDates><CINPlanStartDate>{ref + timedelta(days=31)}</CINPlanStartDate></CINPlanDates>
    <Section47><S47ActualStartDate>{s47}</S47ActualStartDate><DateOfInitialCPC>{icpc}</DateOfInitialCPC><ICPCnotRequired>false</ICPCnotRequired></Section47>
    <ReferralNFA>false</ReferralNFA>
    <ChildProtectionPlans><CPPstartDate>{icpc}</CPPstartDate><InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse><NumberOfPreviousCPP>1</NumberOfPreviousCPP><Reviews><CPPreviewDate>{review}</CPPreviewDate></Reviews></ChildProtectionPlans>
   </CINdetails>
""")
    parts.append("  </Child>\n")
    text = "".join(parts)
    out.write(text)
    written += len(text)
out.write(" </Children>\n</Message>\n")
print(f"{n} children, {written / 1048576:.1f} MB", file=sys.stderr)
